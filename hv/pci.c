#include "pci.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "log.h"

/* Mechanism #1 address register */
#define CF8_ENABLE 0x80000000U
#define CF8_BUS(a) (((a) >> 16) & 0xff)
#define CF8_DEVFN(a) (((a) >> 8) & 0xff)
#define CF8_REG(a) ((a) & 0xfc)

/* The host bridge: Red Hat's generic "PCIe host bridge" ID, class 06 00 00. */
#define HOST_BRIDGE_VENDOR 0x1b36
#define HOST_BRIDGE_DEVICE 0x0008
#define CLASS_HOST_BRIDGE 0x060000

#define BAR_MIN_SIZE 0x1000ULL
#define ROUTING_ERRORS_LOGGED 4

static int kvm_set_gsi_routing(void *ctx, const struct kvm_irq_routing *table)
{
	struct pci_bus *bus = ctx;
	if (bus->vm_fd < 0)
		return 0;
	return ioctl(bus->vm_fd, KVM_SET_GSI_ROUTING, table);
}

static int kvm_irqfd(void *ctx, int fd, uint32_t gsi, bool assign)
{
	struct pci_bus *bus = ctx;
	struct kvm_irqfd req = {
		.fd = (uint32_t)fd, .gsi = gsi, .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};
	if (bus->vm_fd < 0)
		return 0;
	return ioctl(bus->vm_fd, KVM_IRQFD, &req);
}

static int kvm_ioeventfd(void *ctx, int fd, uint64_t addr, unsigned int len, bool assign)
{
	struct pci_bus *bus = ctx;
	struct kvm_ioeventfd req = {
		.addr = addr, .len = len, .fd = fd,
		.flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
	};
	if (bus->vm_fd < 0)
		return 0;
	return ioctl(bus->vm_fd, KVM_IOEVENTFD, &req);
}

static const struct pci_kvm_ops kvm_ops = {
	.set_gsi_routing = kvm_set_gsi_routing,
	.irqfd = kvm_irqfd,
	.ioeventfd = kvm_ioeventfd,
};

void pci_cfg_set16(struct pci_device *d, unsigned int off, uint16_t v)
{
	d->cfg[off] = (uint8_t)v;
	d->cfg[off + 1] = (uint8_t)(v >> 8);
}

void pci_cfg_set32(struct pci_device *d, unsigned int off, uint32_t v)
{
	pci_cfg_set16(d, off, (uint16_t)v);
	pci_cfg_set16(d, off + 2, (uint16_t)(v >> 16));
}

uint16_t pci_cfg_get16(const struct pci_device *d, unsigned int off)
{
	return (uint16_t)(d->cfg[off] | d->cfg[off + 1] << 8);
}

uint32_t pci_cfg_get32(const struct pci_device *d, unsigned int off)
{
	return pci_cfg_get16(d, off) | (uint32_t)pci_cfg_get16(d, off + 2) << 16;
}

static void wmask_set16(struct pci_device *d, unsigned int off, uint16_t m)
{
	d->wmask[off] = (uint8_t)m;
	d->wmask[off + 1] = (uint8_t)(m >> 8);
}

void pci_device_init(struct pci_device *d, uint16_t vendor, uint16_t device,
		     uint32_t class_code, uint8_t revision,
		     const struct pci_device_ops *ops, void *opaque)
{
	memset(d, 0, sizeof(*d));
	d->ops = ops;
	d->opaque = opaque;
	d->cap_end = PCI_CAP_START;
	pci_cfg_set16(d, PCI_VENDOR_ID, vendor);
	pci_cfg_set16(d, PCI_DEVICE_ID, device);
	d->cfg[PCI_REVISION_ID] = revision;
	d->cfg[PCI_CLASS_PROG] = (uint8_t)class_code;
	pci_cfg_set16(d, PCI_CLASS_PROG + 1, (uint16_t)(class_code >> 8));
	/* Memory and I/O decode, bus mastering, INTx disable. */
	wmask_set16(d, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY |
				    PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
	d->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
	d->wmask[PCI_LATENCY_TIMER] = 0xff;
	d->wmask[PCI_INTERRUPT_LINE] = 0xff;
}

static bool is_pow2(uint64_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

int pci_device_set_bar(struct pci_device *d, unsigned int bar, enum pci_bar_type type,
		       uint64_t size)
{
	unsigned int slots = type == PCI_BAR_MEM64 ? 2 : 1;

	if (type == PCI_BAR_NONE || bar + slots > PCI_NUM_BARS || !is_pow2(size) ||
	    size < BAR_MIN_SIZE || (type == PCI_BAR_MEM32 && size > (1ULL << 31)))
		return -1;
	for (unsigned int i = bar; i < bar + slots; i++)
		if (d->bars[i].type != PCI_BAR_NONE)
			return -1;
	if (bar > 0 && d->bars[bar - 1].type == PCI_BAR_MEM64)
		return -1;
	d->bars[bar] = (struct pci_bar){ .type = type, .size = size };
	unsigned int off = PCI_BAR0 + 4 * bar;
	uint64_t mask = ~(size - 1);
	pci_cfg_set32(d, off, type == PCI_BAR_MEM64 ? PCI_BAR_MEM_TYPE_64 : 0);
	for (unsigned int i = 0; i < 4 * slots; i++)
		d->wmask[off + i] = (uint8_t)(mask >> (8 * i));
	d->wmask[off] &= 0xf0; /* type bits are read-only */
	return 0;
}

unsigned int pci_device_add_cap(struct pci_device *d, uint8_t id, unsigned int len)
{
	unsigned int off = (d->cap_end + 3) & ~3U;

	if (len < 2 || off + len > 256)
		return 0;
	d->cfg[off] = id;
	d->cfg[off + 1] = 0;
	if (d->cap_last == 0)
		d->cfg[PCI_CAPABILITY_LIST] = (uint8_t)off;
	else
		d->cfg[d->cap_last + 1] = (uint8_t)off;
	d->cap_last = off;
	d->cap_end = off + len;
	d->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	return off;
}

void pci_bus_init(struct pci_bus *bus, int vm_fd, const struct pci_kvm_ops *kvm,
		  void *kvm_ctx)
{
	memset(bus, 0, sizeof(*bus));
	pthread_mutex_init(&bus->lock, NULL);
	bus->vm_fd = vm_fd;
	bus->kvm = kvm != NULL ? kvm : &kvm_ops;
	bus->kvm_ctx = kvm != NULL ? kvm_ctx : bus;
	bus->mmio32_next = FLINT_PCI_MMIO32_BASE;
	pci_device_init(&bus->host_bridge, HOST_BRIDGE_VENDOR, HOST_BRIDGE_DEVICE,
			CLASS_HOST_BRIDGE, 0, NULL, NULL);
	/* Nothing to decode: the bridge's command register is read-only zero. */
	wmask_set16(&bus->host_bridge, PCI_COMMAND, 0);
	bus->host_bridge.bus = bus;
	bus->slots[0] = &bus->host_bridge;
}

int pci_bus_add_device(struct pci_bus *bus, struct pci_device *d)
{
	unsigned int slot = 1;

	while (slot < FLINT_PCI_SLOTS && bus->slots[slot] != NULL)
		slot++;
	if (slot == FLINT_PCI_SLOTS)
		return -1;
	/* Place every BAR (largest alignment first is not needed: each aligns itself). */
	uint64_t next = bus->mmio32_next;
	uint64_t end = FLINT_PCI_MMIO32_BASE + FLINT_PCI_MMIO32_SIZE;
	uint64_t addr[PCI_NUM_BARS] = { 0 };
	for (unsigned int i = 0; i < PCI_NUM_BARS; i++) {
		const struct pci_bar *b = &d->bars[i];
		if (b->type == PCI_BAR_NONE)
			continue;
		uint64_t a = (next + b->size - 1) & ~(b->size - 1);
		if (a < next || a > end || b->size > end - a)
			return -1;
		addr[i] = a;
		next = a + b->size;
	}
	for (unsigned int i = 0; i < PCI_NUM_BARS; i++) {
		if (d->bars[i].type == PCI_BAR_NONE)
			continue;
		unsigned int off = PCI_BAR0 + 4 * i;
		pci_cfg_set32(d, off, (uint32_t)addr[i] | (pci_cfg_get32(d, off) & 0xf));
		if (d->bars[i].type == PCI_BAR_MEM64)
			pci_cfg_set32(d, off + 4, (uint32_t)(addr[i] >> 32));
	}
	bus->mmio32_next = next;
	d->bus = bus;
	d->slot = slot;
	bus->slots[slot] = d;
	return (int)slot;
}

static uint64_t bar_addr(const struct pci_device *d, unsigned int i)
{
	uint64_t a = pci_cfg_get32(d, PCI_BAR0 + 4 * i) & ~0xfULL;
	if (d->bars[i].type == PCI_BAR_MEM64)
		a |= (uint64_t)pci_cfg_get32(d, PCI_BAR0 + 4 * i + 4) << 32;
	return a;
}

/*
 * A BAR decodes when memory decode is on and it lies wholly in the 32-bit
 * window: a BAR the guest left at its sizing value, or moved over RAM or the
 * APICs, is simply not decoded.
 */
static void update_bars(struct pci_device *d)
{
	bool mem = (pci_cfg_get16(d, PCI_COMMAND) & PCI_COMMAND_MEMORY) != 0;
	const uint64_t lo = FLINT_PCI_MMIO32_BASE;
	const uint64_t hi = FLINT_PCI_MMIO32_BASE + FLINT_PCI_MMIO32_SIZE;

	for (unsigned int i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &d->bars[i];
		if (b->type == PCI_BAR_NONE)
			continue;
		uint64_t a = bar_addr(d, i);
		bool dec = mem && a >= lo && a < hi && b->size <= hi - a;
		if (dec == b->decoded && (!dec || a == b->addr))
			continue;
		b->decoded = dec;
		b->addr = a;
		if (d->ops != NULL && d->ops->bar_moved != NULL)
			d->ops->bar_moved(d, i, a, dec);
	}
}

static struct pci_device *lookup(struct pci_bus *bus, unsigned int devfn)
{
	if (devfn >= 256 || (devfn & 7) != 0)
		return NULL; /* function 0 only */
	return bus->slots[devfn >> 3];
}

static bool access_ok(unsigned int reg, unsigned int size)
{
	return (size == 1 || size == 2 || size == 4) && reg < PCI_CFG_SIZE &&
	       size <= PCI_CFG_SIZE - reg && (reg & (size - 1)) == 0;
}

static uint32_t config_read_locked(struct pci_bus *bus, unsigned int devfn,
				   unsigned int reg, unsigned int size)
{
	struct pci_device *d = lookup(bus, devfn);
	uint32_t v = 0;

	if (d == NULL || !access_ok(reg, size))
		return size >= 4 ? 0xffffffffU : (1U << (8 * size)) - 1;
	for (unsigned int i = 0; i < size; i++)
		v |= (uint32_t)d->cfg[reg + i] << (8 * i);
	return v;
}

static void config_write_locked(struct pci_bus *bus, unsigned int devfn,
				unsigned int reg, unsigned int size, uint32_t value)
{
	struct pci_device *d = lookup(bus, devfn);

	if (d == NULL || !access_ok(reg, size))
		return;
	bool changed = false;
	for (unsigned int i = 0; i < size; i++) {
		uint8_t m = d->wmask[reg + i];
		uint8_t nv = (uint8_t)((d->cfg[reg + i] & ~m) | ((value >> (8 * i)) & m));
		changed |= nv != d->cfg[reg + i];
		d->cfg[reg + i] = nv;
	}
	if (!changed)
		return;
	if ((reg < PCI_COMMAND + 2 && reg + size > PCI_COMMAND) ||
	    (reg < PCI_BAR0 + 4 * PCI_NUM_BARS && reg + size > PCI_BAR0))
		update_bars(d);
	if (d->ops != NULL && d->ops->config_written != NULL)
		d->ops->config_written(d, reg, size);
}

uint32_t pci_config_read(struct pci_bus *bus, unsigned int devfn, unsigned int reg,
			 unsigned int size)
{
	pthread_mutex_lock(&bus->lock);
	uint32_t v = config_read_locked(bus, devfn, reg, size);
	pthread_mutex_unlock(&bus->lock);
	return v;
}

void pci_config_write(struct pci_bus *bus, unsigned int devfn, unsigned int reg,
		      unsigned int size, uint32_t value)
{
	pthread_mutex_lock(&bus->lock);
	config_write_locked(bus, devfn, reg, size, value);
	pthread_mutex_unlock(&bus->lock);
}

static uint32_t le_get(const uint8_t *p, unsigned int n)
{
	uint32_t v = 0;
	for (unsigned int i = 0; i < n && i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static void le_put(uint8_t *p, unsigned int n, uint32_t v)
{
	for (unsigned int i = 0; i < n && i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

bool pci_pio(struct pci_bus *bus, uint16_t port, unsigned int size, bool is_write,
	     uint8_t *data)
{
	if (port == FLINT_PCI_CONFIG_ADDR_PORT && size == 4) {
		pthread_mutex_lock(&bus->lock);
		if (is_write)
			bus->config_addr = le_get(data, 4);
		else
			le_put(data, 4, bus->config_addr);
		pthread_mutex_unlock(&bus->lock);
		return true;
	}
	if (port < FLINT_PCI_CONFIG_DATA_PORT || port > FLINT_PCI_CONFIG_DATA_PORT + 3)
		return false;
	unsigned int byte = port - FLINT_PCI_CONFIG_DATA_PORT;
	pthread_mutex_lock(&bus->lock);
	uint32_t a = bus->config_addr;
	/* Bus 0 only; the access must stay inside the data dword. */
	bool ok = (a & CF8_ENABLE) && CF8_BUS(a) == 0 && size <= 4 - byte;
	if (is_write) {
		if (ok)
			config_write_locked(bus, CF8_DEVFN(a), CF8_REG(a) + byte, size,
					    le_get(data, size));
	} else {
		uint32_t v = ok ? config_read_locked(bus, CF8_DEVFN(a), CF8_REG(a) + byte, size)
				: 0xffffffffU;
		le_put(data, size, v);
	}
	pthread_mutex_unlock(&bus->lock);
	return true;
}

static bool bar_access(struct pci_bus *bus, uint64_t addr, unsigned int len,
		       bool is_write, uint8_t *data)
{
	for (unsigned int s = 1; s < FLINT_PCI_SLOTS; s++) {
		struct pci_device *d = bus->slots[s];
		if (d == NULL)
			continue;
		for (unsigned int i = 0; i < PCI_NUM_BARS; i++) {
			const struct pci_bar *b = &d->bars[i];
			if (!b->decoded || addr < b->addr || addr - b->addr >= b->size)
				continue;
			uint64_t off = addr - b->addr;
			if (len > b->size - off) {
				/* Straddles the BAR's end: not a device register. */
				if (!is_write)
					memset(data, 0xff, len);
			} else if (is_write) {
				if (d->ops != NULL && d->ops->bar_write != NULL)
					d->ops->bar_write(d, i, off, data, len);
			} else {
				memset(data, 0xff, len);
				if (d->ops != NULL && d->ops->bar_read != NULL)
					d->ops->bar_read(d, i, off, data, len);
			}
			return true;
		}
	}
	return false;
}

bool pci_mmio(struct pci_bus *bus, uint64_t addr, unsigned int len, bool is_write,
	      uint8_t *data)
{
	if (len == 0 || len > 8)
		return false;
	if (addr >= FLINT_PCI_ECAM_BASE && addr - FLINT_PCI_ECAM_BASE < FLINT_PCI_ECAM_SIZE) {
		uint64_t off = addr - FLINT_PCI_ECAM_BASE;
		unsigned int devfn = (unsigned int)(off >> 12) & 0xff;
		unsigned int reg = (unsigned int)off & 0xfff;
		if (is_write) {
			if (len <= 4)
				pci_config_write(bus, devfn, reg, len, le_get(data, len));
		} else if (len <= 4) {
			le_put(data, len, pci_config_read(bus, devfn, reg, len));
		} else {
			memset(data, 0xff, len);
		}
		return true;
	}
	if (addr < FLINT_PCI_MMIO32_BASE ||
	    addr >= FLINT_PCI_MMIO32_BASE + FLINT_PCI_MMIO32_SIZE)
		return false;
	pthread_mutex_lock(&bus->lock);
	bool hit = bar_access(bus, addr, len, is_write, data);
	pthread_mutex_unlock(&bus->lock);
	return hit;
}

int pci_bus_alloc_gsis(struct pci_bus *bus, unsigned int n)
{
	if (n > PCI_MSI_GSIS - bus->gsis_used)
		return -1;
	unsigned int first = bus->gsis_used;
	bus->gsis_used += n;
	return (int)(FLINT_PCI_MSI_GSI_BASE + first);
}

void pci_bus_set_msi_route(struct pci_bus *bus, uint32_t gsi, bool active,
			   uint32_t addr_lo, uint32_t addr_hi, uint32_t data)
{
	if (gsi < FLINT_PCI_MSI_GSI_BASE || gsi - FLINT_PCI_MSI_GSI_BASE >= PCI_MSI_GSIS)
		return;
	bus->msi[gsi - FLINT_PCI_MSI_GSI_BASE] = (struct pci_msi_route){
		.active = active, .addr_lo = addr_lo, .addr_hi = addr_hi, .data = data,
	};
}

/*
 * KVM_SET_GSI_ROUTING replaces the whole table: it always starts with the
 * routes KVM installs by default for the in-kernel IOAPIC (pins 0-23) and
 * PIC (0-15), or the PIT, the UART and every legacy line would go dead.
 */
int pci_bus_commit_routes(struct pci_bus *bus)
{
	struct kvm_irq_routing *t = (struct kvm_irq_routing *)(void *)bus->routing;
	unsigned int n = 0;

	memset(&bus->routing, 0, sizeof(bus->routing));
	for (uint32_t pin = 0; pin < 24; pin++) {
		t->entries[n++] = (struct kvm_irq_routing_entry){
			.gsi = pin, .type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = { .irqchip = KVM_IRQCHIP_IOAPIC, .pin = pin },
		};
		if (pin < 16)
			t->entries[n++] = (struct kvm_irq_routing_entry){
				.gsi = pin, .type = KVM_IRQ_ROUTING_IRQCHIP,
				.u.irqchip = {
					.irqchip = pin < 8 ? KVM_IRQCHIP_PIC_MASTER
							   : KVM_IRQCHIP_PIC_SLAVE,
					.pin = pin % 8,
				},
			};
	}
	for (unsigned int i = 0; i < bus->gsis_used; i++) {
		const struct pci_msi_route *r = &bus->msi[i];
		if (!r->active)
			continue;
		t->entries[n++] = (struct kvm_irq_routing_entry){
			.gsi = FLINT_PCI_MSI_GSI_BASE + i, .type = KVM_IRQ_ROUTING_MSI,
			.u.msi = { .address_lo = r->addr_lo, .address_hi = r->addr_hi,
				   .data = r->data },
		};
	}
	t->nr = n;
	if (bus->kvm->set_gsi_routing(bus->kvm_ctx, t) == 0)
		return 0;
	if (bus->routing_errors++ < ROUTING_ERRORS_LOGGED)
		log_warn("KVM_SET_GSI_ROUTING (%u entries) failed, errno %d", n, errno);
	return -1;
}
