#include "virtio_pci.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"

/* struct virtio_pci_cap (+ notify_off_multiplier for the notify capability) */
#define VIRTIO_PCI_REVISION 1
#define VIRTIO_PCI_SUBSYSTEM_ID 0x1100
/* Transport features flint-hv cannot honour (32-bit notifies, queue_reset). */
#define TRANSPORT_UNSUPPORTED ((1ULL << VIRTIO_F_NOTIFICATION_DATA) | (1ULL << VIRTIO_F_RING_RESET))
#define KVM_ERRORS_LOGGED 4

static void kvm_error(struct virtio_pci *vp, const char *what, unsigned int q)
{
	if (vp->kvm_errors++ < KVM_ERRORS_LOGGED)
		log_warn("virtio-pci %02x.0: %s for queue %u failed, errno %d",
			 vp->pci.slot, what, q, errno);
}

static uint64_t device_features(const struct virtio_pci *vp)
{
	uint64_t f = vp->p.ops->get_features(vp->p.be) | (1ULL << VIRTIO_F_VERSION_1);
	return f & ~TRANSPORT_UNSUPPORTED;
}

static uint64_t notify_addr(const struct virtio_pci *vp, unsigned int q)
{
	return vp->pci.bars[VIRTIO_PCI_BAR].addr + VIRTIO_PCI_NOTIFY_OFF +
	       (uint64_t)q * VIRTIO_PCI_NOTIFY_MULTIPLIER;
}

/*
 * Binds (or unbinds) queue q's call eventfd to its vector's GSI: bound while
 * the queue is enabled and its vector can deliver.  While the vector is
 * masked the eventfd is unbound, so the card's signals add up in its counter
 * (the message is pending); binding it again makes KVM inject at once if the
 * counter is nonzero (kvm_irqfd_assign polls the eventfd after registering),
 * and KVM resets the counter when an irqfd is unbound (every signal until
 * then was injected).  One KVM call per change, none per interrupt.
 */
static void irqfd_update(struct virtio_pci *vp, unsigned int q)
{
	struct virtio_pci_queue *vq = &vp->q[q];
	struct pci_bus *bus = vp->pci.bus;
	bool want = vq->enabled && vq->msix_vector != PCI_MSIX_NO_VECTOR &&
		    pci_msix_vector_enabled(&vp->msix, vq->msix_vector);
	uint32_t gsi = want ? pci_msix_gsi(&vp->msix, vq->msix_vector) : 0;

	if (vq->irqfd_bound && (!want || gsi != vq->irqfd_gsi)) {
		if (bus->kvm->irqfd(bus->kvm_ctx, vq->call_fd, vq->irqfd_gsi, false) != 0)
			kvm_error(vp, "KVM_IRQFD deassign", q);
		vq->irqfd_bound = false;
	}
	if (want && !vq->irqfd_bound) {
		if (bus->kvm->irqfd(bus->kvm_ctx, vq->call_fd, gsi, true) != 0) {
			kvm_error(vp, "KVM_IRQFD", q);
			return;
		}
		vq->irqfd_bound = true;
		vq->irqfd_gsi = gsi;
	}
}

/* pci_msix: vector v can deliver again, or no longer can. */
static void vector_masked(void *opaque, unsigned int v, bool masked)
{
	struct virtio_pci *vp = opaque;

	(void)masked; /* irqfd_update asks pci_msix itself */
	for (unsigned int q = 0; q < vp->p.nr_queues; q++)
		if (vp->q[q].msix_vector == v)
			irqfd_update(vp, q);
	/*
	 * The configuration vector needs nothing: flint-hv never signals a
	 * configuration change (the device config is fixed once negotiated).
	 */
}

/*
 * pci_msix's PBA read for masked vector v: pending if an enabled queue on v
 * has a signalled call eventfd (unbound while masked, so nobody else drains
 * it).  A zero-timeout poll of one fd, which the vCPU seccomp filter allows
 * (the vhost-user reply wait uses the same); never on the data path.
 */
static bool vector_pending(void *opaque, unsigned int v)
{
	struct virtio_pci *vp = opaque;

	for (unsigned int q = 0; q < vp->p.nr_queues; q++) {
		const struct virtio_pci_queue *vq = &vp->q[q];
		if (!vq->enabled || vq->msix_vector != v || vq->irqfd_bound || vq->call_fd < 0)
			continue;
		struct pollfd p = { .fd = vq->call_fd, .events = POLLIN };
		if (poll(&p, 1, 0) == 1 && (p.revents & POLLIN))
			return true;
	}
	return false;
}

static const struct pci_msix_ops msix_ops = {
	.vector_masked = vector_masked,
	.vector_pending = vector_pending,
};

static void reset_device(struct virtio_pci *vp)
{
	vp->p.ops->reset(vp->p.be);
	vp->device_feature_select = 0;
	vp->driver_feature_select = 0;
	vp->driver_features = 0;
	vp->config_msix_vector = PCI_MSIX_NO_VECTOR;
	vp->queue_select = 0;
	vp->status = 0;
	/*
	 * A queue whose vector was masked keeps whatever its call eventfd
	 * counted (flint-hv may not read it under seccomp): at worst one
	 * spurious interrupt once the fd is bound again, which virtio drivers
	 * ignore (nothing new in the used ring).
	 */
	for (unsigned int q = 0; q < vp->p.nr_queues; q++) {
		struct virtio_pci_queue *vq = &vp->q[q];
		vq->enabled = false;
		irqfd_update(vp, q);
		vq->size = vp->p.queue_size_max;
		vq->msix_vector = PCI_MSIX_NO_VECTOR;
		vq->desc = vq->driver = vq->device = 0;
	}
}

static struct virtio_pci_queue *selected(struct virtio_pci *vp)
{
	return vp->queue_select < vp->p.nr_queues ? &vp->q[vp->queue_select] : NULL;
}

static void put_le(uint8_t *p, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;
	for (unsigned int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* The common configuration as the driver reads it now. */
static void common_image(struct virtio_pci *vp, uint8_t img[VIRTIO_PCI_COMMON_LEN])
{
	const struct virtio_pci_queue *vq = selected(vp);
	uint64_t f = device_features(vp);

	memset(img, 0, VIRTIO_PCI_COMMON_LEN);
	put_le(img + VIRTIO_PCI_COMMON_DFSELECT, vp->device_feature_select, 4);
	if (vp->device_feature_select < 2)
		put_le(img + VIRTIO_PCI_COMMON_DF, f >> (32 * vp->device_feature_select), 4);
	put_le(img + VIRTIO_PCI_COMMON_GFSELECT, vp->driver_feature_select, 4);
	if (vp->driver_feature_select < 2)
		put_le(img + VIRTIO_PCI_COMMON_GF,
		       vp->driver_features >> (32 * vp->driver_feature_select), 4);
	put_le(img + VIRTIO_PCI_COMMON_MSIX, vp->config_msix_vector, 2);
	put_le(img + VIRTIO_PCI_COMMON_NUMQ, vp->p.nr_queues, 2);
	img[VIRTIO_PCI_COMMON_STATUS] = vp->status;
	img[VIRTIO_PCI_COMMON_CFGGENERATION] = vp->config_generation;
	put_le(img + VIRTIO_PCI_COMMON_Q_SELECT, vp->queue_select, 2);
	if (vq == NULL)
		return; /* queue_size 0: no such queue */
	put_le(img + VIRTIO_PCI_COMMON_Q_SIZE, vq->size, 2);
	put_le(img + VIRTIO_PCI_COMMON_Q_MSIX, vq->msix_vector, 2);
	put_le(img + VIRTIO_PCI_COMMON_Q_ENABLE, vq->enabled, 2);
	put_le(img + VIRTIO_PCI_COMMON_Q_NOFF, vp->queue_select, 2);
	put_le(img + VIRTIO_PCI_COMMON_Q_DESCLO, vq->desc, 8);
	put_le(img + VIRTIO_PCI_COMMON_Q_AVAILLO, vq->driver, 8);
	put_le(img + VIRTIO_PCI_COMMON_Q_USEDLO, vq->device, 8);
}

static uint16_t valid_vector(const struct virtio_pci *vp, uint64_t v)
{
	/* An unknown vector reads back as NO_VECTOR: the driver sees the refusal. */
	return v < vp->msix.nr ? (uint16_t)v : PCI_MSIX_NO_VECTOR;
}

static void set_status(struct virtio_pci *vp, uint8_t v)
{
	if (v == 0) {
		reset_device(vp);
		return;
	}
	uint8_t newly = (uint8_t)(v & ~vp->status);
	if (newly & VIRTIO_CONFIG_S_FEATURES_OK) {
		uint64_t offered = device_features(vp);
		bool ok = (vp->driver_features & ~offered) == 0 &&
			  (vp->driver_features & (1ULL << VIRTIO_F_VERSION_1)) &&
			  vp->p.ops->set_features(vp->p.be, vp->driver_features) == 0;
		if (!ok)
			v &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
	}
	/* NEEDS_RESET is the device's to set; only a reset clears it. */
	vp->status = (uint8_t)((v & ~VIRTIO_CONFIG_S_NEEDS_RESET) |
			       (vp->status & VIRTIO_CONFIG_S_NEEDS_RESET));
	if ((newly & VIRTIO_CONFIG_S_DRIVER_OK) && vp->p.ops->driver_ok != NULL)
		vp->p.ops->driver_ok(vp->p.be);
}

static void enable_queue(struct virtio_pci *vp, unsigned int q)
{
	struct virtio_pci_queue *vq = &vp->q[q];

	if (vq->enabled || !(vp->status & VIRTIO_CONFIG_S_FEATURES_OK) ||
	    (vp->status & VIRTIO_CONFIG_S_NEEDS_RESET))
		return;
	/* Split ring alignment (virtio 1.x, 2.7): 16, 2 and 4 bytes. */
	if ((vq->desc & 15) || (vq->driver & 1) || (vq->device & 3)) {
		vp->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
		return;
	}
	vq->enabled = true;
	irqfd_update(vp, q);
	/*
	 * The card always gets the call eventfd.  Whether a signal reaches the
	 * guest is decided here, by binding the eventfd to the vector's GSI or
	 * not: with no vector, a masked vector or a failed KVM_IRQFD the
	 * signals add up in the counter, and a later vector, unmask or retry
	 * binds it (injecting at once if it was signalled).  Handing the card
	 * the fd only in some of those states would leave a queue that gets
	 * its vector after being enabled silent forever.
	 */
	struct virtio_pci_queue_info info = {
		.index = q, .size = vq->size,
		.desc = vq->desc, .driver = vq->driver, .device = vq->device,
		.kick_fd = vq->kick_fd, .call_fd = vq->call_fd,
	};
	if (vp->p.ops->queue_start(vp->p.be, &info) != 0)
		vp->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
}

/* Writes to a 64-bit ring address, whole or one 32-bit half. */
static void set_addr(uint64_t *field, unsigned int part, unsigned int len, uint64_t v)
{
	if (len == 8)
		*field = v;
	else if (part == 0)
		*field = (*field & ~0xffffffffULL) | (v & 0xffffffffULL);
	else
		*field = (*field & 0xffffffffULL) | (v << 32);
}

static void queue_write(struct virtio_pci *vp, unsigned int field, unsigned int part,
			unsigned int len, uint64_t v)
{
	struct virtio_pci_queue *vq = selected(vp);

	if (vq == NULL)
		return;
	switch (field) {
	case VIRTIO_PCI_COMMON_Q_SIZE:
		if (!vq->enabled && v != 0 && v <= vp->p.queue_size_max && (v & (v - 1)) == 0)
			vq->size = (uint16_t)v;
		return;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		vq->msix_vector = valid_vector(vp, v);
		irqfd_update(vp, vp->queue_select);
		return;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		if (v == 1)
			enable_queue(vp, vp->queue_select);
		return;
	case VIRTIO_PCI_COMMON_Q_DESCLO:
		if (!vq->enabled)
			set_addr(&vq->desc, part, len, v);
		return;
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
		if (!vq->enabled)
			set_addr(&vq->driver, part, len, v);
		return;
	case VIRTIO_PCI_COMMON_Q_USEDLO:
		if (!vq->enabled)
			set_addr(&vq->device, part, len, v);
		return;
	default:
		return;
	}
}

/* Width of each common-config field; 0 for read-only ones. */
static unsigned int field_width(unsigned int off)
{
	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
	case VIRTIO_PCI_COMMON_GFSELECT:
	case VIRTIO_PCI_COMMON_GF:
		return 4;
	case VIRTIO_PCI_COMMON_MSIX:
	case VIRTIO_PCI_COMMON_Q_SELECT:
	case VIRTIO_PCI_COMMON_Q_SIZE:
	case VIRTIO_PCI_COMMON_Q_MSIX:
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		return 2;
	case VIRTIO_PCI_COMMON_STATUS:
		return 1;
	case VIRTIO_PCI_COMMON_Q_DESCLO:
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
	case VIRTIO_PCI_COMMON_Q_USEDLO:
		return 8;
	default:
		return 0;
	}
}

static void common_write(struct virtio_pci *vp, unsigned int off, unsigned int len,
			 uint64_t v)
{
	/* 64-bit fields take 4 bytes at either half or all 8; others their width. */
	unsigned int field = off & ~7U;
	unsigned int part = 0;
	if (field_width(field) == 8 && (len == 4 || (len == 8 && off == field))) {
		part = (off - field) / 4;
	} else {
		field = off;
		if (field_width(off) == 0 || field_width(off) != len)
			return;
	}
	switch (field) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		vp->device_feature_select = (uint32_t)v;
		return;
	case VIRTIO_PCI_COMMON_GFSELECT:
		vp->driver_feature_select = (uint32_t)v;
		return;
	case VIRTIO_PCI_COMMON_GF:
		/* Fixed once FEATURES_OK is set; only bits 0..63 exist. */
		if ((vp->status & VIRTIO_CONFIG_S_FEATURES_OK) || vp->driver_feature_select > 1)
			return;
		set_addr(&vp->driver_features, vp->driver_feature_select, 4, v);
		return;
	case VIRTIO_PCI_COMMON_MSIX:
		vp->config_msix_vector = valid_vector(vp, v);
		return;
	case VIRTIO_PCI_COMMON_STATUS:
		set_status(vp, (uint8_t)v);
		return;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		vp->queue_select = (uint16_t)v;
		return;
	default:
		queue_write(vp, field, part, len, v);
		return;
	}
}

static void bar_read(struct pci_device *d, unsigned int bar, uint64_t off, uint8_t *data,
		     unsigned int len)
{
	struct virtio_pci *vp = d->opaque;

	if (bar == VIRTIO_PCI_MSIX_BAR) {
		pci_msix_bar_read(&vp->msix, bar, off, data, len);
		return;
	}
	if (bar != VIRTIO_PCI_BAR)
		return;
	if (off < VIRTIO_PCI_COMMON_LEN && len <= VIRTIO_PCI_COMMON_LEN - off) {
		uint8_t img[VIRTIO_PCI_COMMON_LEN];
		common_image(vp, img);
		memcpy(data, img + off, len);
	} else if (off == VIRTIO_PCI_ISR_OFF && len == 1) {
		data[0] = 0; /* MSI-X only: nothing is ever signalled through ISR */
	} else if (off >= VIRTIO_PCI_DEVICE_OFF &&
		   off - VIRTIO_PCI_DEVICE_OFF < vp->p.config_size &&
		   len <= vp->p.config_size - (off - VIRTIO_PCI_DEVICE_OFF)) {
		vp->p.ops->get_config(vp->p.be, (uint32_t)(off - VIRTIO_PCI_DEVICE_OFF), data,
				      len);
	}
}

static void bar_write(struct pci_device *d, unsigned int bar, uint64_t off,
		      const uint8_t *data, unsigned int len)
{
	struct virtio_pci *vp = d->opaque;

	if (bar == VIRTIO_PCI_MSIX_BAR) {
		pci_msix_bar_write(&vp->msix, bar, off, data, len);
		return;
	}
	if (bar != VIRTIO_PCI_BAR)
		return;
	if (off < VIRTIO_PCI_COMMON_LEN && len <= VIRTIO_PCI_COMMON_LEN - off) {
		common_write(vp, (unsigned int)off, len, get_le(data, len));
	} else if (off >= VIRTIO_PCI_DEVICE_OFF &&
		   off - VIRTIO_PCI_DEVICE_OFF < vp->p.config_size &&
		   len <= vp->p.config_size - (off - VIRTIO_PCI_DEVICE_OFF)) {
		vp->p.ops->set_config(vp->p.be, (uint32_t)(off - VIRTIO_PCI_DEVICE_OFF), data,
				      len);
	}
	/*
	 * Notify writes normally never get here (KVM consumes them on the
	 * ioeventfd); one that does (wrong width, no ioeventfd) is dropped.
	 */
}

static void config_written(struct pci_device *d, unsigned int off, unsigned int len)
{
	struct virtio_pci *vp = d->opaque;
	pci_msix_config_written(&vp->msix, off, len);
}

/* BAR 0 moved or changed decode: move the notify ioeventfds with it. */
static void bar_moved(struct pci_device *d, unsigned int bar, uint64_t addr, bool decoded)
{
	struct virtio_pci *vp = d->opaque;
	struct pci_bus *bus = d->bus;

	(void)addr;
	if (bar != VIRTIO_PCI_BAR)
		return;
	for (unsigned int q = 0; q < vp->p.nr_queues; q++) {
		struct virtio_pci_queue *vq = &vp->q[q];
		if (vq->ioeventfd_bound) {
			if (bus->kvm->ioeventfd(bus->kvm_ctx, vq->kick_fd, vq->ioeventfd_addr, 2,
						false) != 0)
				kvm_error(vp, "KVM_IOEVENTFD deassign", q);
			vq->ioeventfd_bound = false;
		}
		if (!decoded)
			continue;
		uint64_t a = notify_addr(vp, q);
		if (bus->kvm->ioeventfd(bus->kvm_ctx, vq->kick_fd, a, 2, true) != 0) {
			kvm_error(vp, "KVM_IOEVENTFD", q);
			continue;
		}
		vq->ioeventfd_bound = true;
		vq->ioeventfd_addr = a;
	}
}

static const struct pci_device_ops virtio_pci_ops = {
	.bar_read = bar_read,
	.bar_write = bar_write,
	.config_written = config_written,
	.bar_moved = bar_moved,
};

/* One virtio vendor capability (virtio 1.x, 4.1.4) pointing into BAR 0. */
static int add_cap(struct virtio_pci *vp, uint8_t type, uint32_t off, uint32_t len)
{
	bool notify = type == VIRTIO_PCI_CAP_NOTIFY_CFG;
	uint8_t cap_len = notify ? sizeof(struct virtio_pci_notify_cap) : sizeof(struct virtio_pci_cap);
	unsigned int c = pci_device_add_cap(&vp->pci, PCI_CAP_ID_VNDR, cap_len);
	if (c == 0)
		return -1;
	vp->pci.cfg[c + VIRTIO_PCI_CAP_LEN] = cap_len;
	vp->pci.cfg[c + VIRTIO_PCI_CAP_CFG_TYPE] = type;
	vp->pci.cfg[c + VIRTIO_PCI_CAP_BAR] = VIRTIO_PCI_BAR;
	pci_cfg_set32(&vp->pci, c + VIRTIO_PCI_CAP_OFFSET, off);
	pci_cfg_set32(&vp->pci, c + VIRTIO_PCI_CAP_LENGTH, len);
	if (notify)
		pci_cfg_set32(&vp->pci, c + offsetof(struct virtio_pci_notify_cap, notify_off_multiplier),
			      VIRTIO_PCI_NOTIFY_MULTIPLIER);
	return 0;
}

static int check_params(const struct virtio_pci_params *p, char *err, size_t errlen)
{
	const struct virtio_backend_ops *o = p->ops;
	if (o == NULL || o->get_features == NULL || o->set_features == NULL ||
	    o->get_config == NULL || o->set_config == NULL || o->queue_start == NULL ||
	    o->reset == NULL) {
		snprintf(err, errlen, "virtio-pci: back end lacks a required operation");
		return -1;
	}
	if (p->nr_queues == 0 || p->nr_queues > VIRTIO_PCI_QUEUES_MAX ||
	    p->queue_size_max == 0 || p->queue_size_max > VIRTIO_PCI_QUEUE_SIZE_MAX ||
	    (p->queue_size_max & (p->queue_size_max - 1)) != 0 ||
	    p->config_size > VIRTIO_PCI_DEVICE_CFG_MAX || p->device_type > 0xffff - 0x1040) {
		snprintf(err, errlen, "virtio-pci: type %u: %u queues of %u, config %u bytes:"
			 " out of range", p->device_type, p->nr_queues, p->queue_size_max,
			 p->config_size);
		return -1;
	}
	return 0;
}

int virtio_pci_init(struct virtio_pci *vp, struct pci_bus *bus,
		    const struct virtio_pci_params *p, char *err, size_t errlen)
{
	memset(vp, 0, sizeof(*vp));
	for (unsigned int q = 0; q < VIRTIO_PCI_QUEUES_MAX; q++)
		vp->q[q].kick_fd = vp->q[q].call_fd = -1;
	if (check_params(p, err, errlen) != 0)
		return -1;
	vp->p = *p;
	for (unsigned int q = 0; q < p->nr_queues; q++) {
		vp->q[q].kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		vp->q[q].call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vp->q[q].kick_fd < 0 || vp->q[q].call_fd < 0) {
			snprintf(err, errlen, "virtio-pci: eventfd: %s", strerror(errno));
			virtio_pci_close(vp);
			return -1;
		}
	}
	struct pci_device *d = &vp->pci;
	pci_device_init(d, VIRTIO_PCI_VENDOR, (uint16_t)(VIRTIO_PCI_DEVICE_BASE + p->device_type),
			p->class_code, VIRTIO_PCI_REVISION, &virtio_pci_ops, vp);
	pci_cfg_set16(d, PCI_SUBSYSTEM_VENDOR_ID, VIRTIO_PCI_VENDOR);
	pci_cfg_set16(d, PCI_SUBSYSTEM_ID, VIRTIO_PCI_SUBSYSTEM_ID);
	int bad = pci_device_set_bar(d, VIRTIO_PCI_BAR, PCI_BAR_MEM64, VIRTIO_PCI_BAR_SIZE) != 0 ||
		  pci_device_set_bar(d, VIRTIO_PCI_MSIX_BAR, PCI_BAR_MEM32,
				     VIRTIO_PCI_MSIX_BAR_SIZE) != 0;
	/* One vector per queue plus one for configuration changes. */
	bad = bad || pci_msix_init(&vp->msix, bus, d, p->nr_queues + 1, VIRTIO_PCI_MSIX_BAR, 0,
				   VIRTIO_PCI_MSIX_PBA_OFF) != 0;
	if (!bad)
		pci_msix_set_ops(&vp->msix, &msix_ops, vp);
	bad = bad || add_cap(vp, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFF,
			     VIRTIO_PCI_COMMON_LEN) != 0;
	bad = bad || add_cap(vp, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF, 1) != 0;
	bad = bad || add_cap(vp, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFF,
			     p->nr_queues * VIRTIO_PCI_NOTIFY_MULTIPLIER) != 0;
	if (!bad && p->config_size > 0)
		bad = add_cap(vp, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_OFF,
			      p->config_size) != 0;
	if (bad) {
		snprintf(err, errlen, "virtio-pci: cannot lay out BARs, MSI-X or capabilities");
		virtio_pci_close(vp);
		return -1;
	}
	pthread_mutex_lock(&bus->lock);
	d->bus = bus;
	reset_device(vp);
	int slot = pci_bus_add_device(bus, d);
	pthread_mutex_unlock(&bus->lock);
	if (slot < 0) {
		snprintf(err, errlen, "virtio-pci: no free PCI slot or BAR space");
		virtio_pci_close(vp);
		return -1;
	}
	return 0;
}

void virtio_pci_close(struct virtio_pci *vp)
{
	for (unsigned int q = 0; q < VIRTIO_PCI_QUEUES_MAX; q++) {
		if (vp->q[q].kick_fd >= 0)
			close(vp->q[q].kick_fd);
		if (vp->q[q].call_fd >= 0)
			close(vp->q[q].call_fd);
		vp->q[q].kick_fd = vp->q[q].call_fd = -1;
	}
}
