#include "platform.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "flint/guest_abi.h"
#include "log.h"

/* Guest-triggered log lines are bounded: a guest must not flood the host log. */
#define MARKERS_LOGGED_MAX 4
#define UNHANDLED_LOGGED_MAX 16

/* Called with p->lock held: queue only, never block here. */
static void com1_tx(void *opaque, uint8_t byte)
{
	struct platform *p = opaque;

	if (p->tx_len == PLATFORM_TX_RING) {
		p->tx_dropped++;
		return;
	}
	p->tx_ring[(p->tx_head + p->tx_len) % PLATFORM_TX_RING] = byte;
	p->tx_len++;
}

/* Takes up to max queued bytes out of the ring (under p->lock). */
static size_t tx_take(struct platform *p, uint8_t *out, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&p->lock);
	while (n < max && p->tx_len > 0) {
		out[n++] = p->tx_ring[p->tx_head];
		p->tx_head = (p->tx_head + 1) % PLATFORM_TX_RING;
		p->tx_len--;
	}
	pthread_mutex_unlock(&p->lock);
	return n;
}

static void write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t r = write(fd, buf, len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return; /* a closed or broken console drops output */
		buf += r;
		len -= (size_t)r;
	}
}

static bool tx_pending(struct platform *p)
{
	pthread_mutex_lock(&p->lock);
	bool pending = p->tx_len > 0;
	pthread_mutex_unlock(&p->lock);
	return pending;
}

void platform_console_flush(struct platform *p)
{
	uint8_t chunk[4096];

	do {
		/* Someone else is writing: they will take our bytes too. */
		if (pthread_mutex_trylock(&p->tx_flush) != 0)
			return;
		size_t n;
		while ((n = tx_take(p, chunk, sizeof(chunk))) > 0)
			write_all(p->console_fd, chunk, n);
		pthread_mutex_unlock(&p->tx_flush);
		/* Bytes queued between our last take and the unlock. */
	} while (tx_pending(p));
}

static void com1_set_irq(void *opaque, int level)
{
	struct platform *p = opaque;
	struct kvm_irq_level irq = { .irq = FLINT_COM1_IRQ, .level = (uint32_t)level };

	if (p->vm_fd >= 0 && ioctl(p->vm_fd, KVM_IRQ_LINE, &irq) != 0)
		log_errno("KVM_IRQ_LINE(%d)", FLINT_COM1_IRQ);
}

void platform_init(struct platform *p, int vm_fd, int console_fd, bool debug_exit,
		   const struct timespec *start)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->tx_flush, NULL);
	p->vm_fd = vm_fd;
	p->console_fd = console_fd;
	p->debug_exit = debug_exit;
	p->start = *start;
	serial_init(&p->com1, com1_tx, com1_set_irq, p);
}

void platform_attach_pci(struct platform *p, struct pci_bus *bus)
{
	p->pci = bus;
}

static uint32_t le_value(const uint8_t *data, unsigned int size)
{
	uint32_t v = 0;
	for (unsigned int i = 0; i < size && i < 4; i++)
		v |= (uint32_t)data[i] << (8 * i);
	return v;
}

static void log_unhandled(struct platform *p, const char *what, uint64_t addr,
			  bool is_write)
{
	/*
	 * Several vCPUs may get here at once: count atomically, and stop
	 * counting once over the bound so the counter can never wrap.
	 */
	if (__atomic_load_n(&p->unhandled_logged, __ATOMIC_RELAXED) >= UNHANDLED_LOGGED_MAX)
		return;
	unsigned int n = __atomic_fetch_add(&p->unhandled_logged, 1, __ATOMIC_RELAXED);
	if (n >= UNHANDLED_LOGGED_MAX)
		return;
	log_debug("unassigned %s %s at 0x%llx%s", what, is_write ? "write" : "read",
		  (unsigned long long)addr,
		  n + 1 == UNHANDLED_LOGGED_MAX ? " (no more logged)" : "");
}

static enum platform_action com1_access(struct platform *p, uint16_t port,
					bool is_write, uint8_t *data)
{
	unsigned int off = port - FLINT_COM1_PORT;

	pthread_mutex_lock(&p->lock);
	if (is_write)
		serial_write(&p->com1, off, data[0]);
	else
		data[0] = serial_read(&p->com1, off);
	bool out = p->tx_len > 0;
	pthread_mutex_unlock(&p->lock);
	if (out)
		platform_console_flush(p);
	return PLATFORM_CONTINUE;
}

static enum platform_action power_write(struct platform *p, uint16_t port, uint32_t v,
					uint32_t *value, const char **reason)
{
	switch (port) {
	case FLINT_I8042_CMD_PORT:
		if ((v & 0xff) != FLINT_I8042_CMD_RESET)
			return PLATFORM_CONTINUE;
		*reason = "i8042 reset";
		return PLATFORM_REBOOT;
	case FLINT_RESET_CONTROL_PORT:
		if (!(v & 0x04))
			return PLATFORM_CONTINUE;
		*reason = "reset control register 0xcf9";
		return PLATFORM_REBOOT;
	case FLINT_ACPI_RESET_PORT:
		if ((v & 0xff) != FLINT_ACPI_RESET_VALUE)
			return PLATFORM_CONTINUE;
		*reason = "ACPI reset register";
		return PLATFORM_REBOOT;
	case FLINT_ACPI_SLEEP_CONTROL_PORT:
		if (!(v & FLINT_ACPI_SLP_EN) || ((v >> 2) & 7) != FLINT_ACPI_SLP_TYP_S5)
			return PLATFORM_CONTINUE;
		*reason = "ACPI S5 sleep control";
		return PLATFORM_POWEROFF;
	case FLINT_DEBUG_EXIT_PORT:
		if (!p->debug_exit)
			return PLATFORM_CONTINUE;
		*value = v;
		*reason = "debug-exit port";
		return PLATFORM_DEBUG_EXIT;
	default:
		return PLATFORM_CONTINUE;
	}
}

static bool is_power_port(const struct platform *p, uint16_t port)
{
	return port == FLINT_I8042_CMD_PORT || port == FLINT_I8042_DATA_PORT ||
	       port == FLINT_RESET_CONTROL_PORT || port == FLINT_ACPI_RESET_PORT ||
	       port == FLINT_ACPI_SLEEP_CONTROL_PORT ||
	       port == FLINT_ACPI_SLEEP_STATUS_PORT ||
	       (p->debug_exit && port == FLINT_DEBUG_EXIT_PORT);
}

enum platform_action platform_pio(struct platform *p, uint16_t port, unsigned int size,
				  bool is_write, uint8_t *data, uint32_t *value,
				  const char **reason)
{
	*reason = "";
	if (size != 1 && size != 2 && size != 4)
		return PLATFORM_CONTINUE;
	if (port >= FLINT_COM1_PORT && port < FLINT_COM1_PORT + 8 && size == 1)
		return com1_access(p, port, is_write, data);
	/* Before the power ports: 0xcf9 (reset control) sits between 0xcf8 and 0xcfc. */
	if (p->pci != NULL && pci_pio(p->pci, port, size, is_write, data))
		return PLATFORM_CONTINUE;
	if (is_power_port(p, port)) {
		if (!is_write) {
			/* i8042 status: nothing to read, input buffer empty; others read 0. */
			memset(data, 0, size);
			return PLATFORM_CONTINUE;
		}
		return power_write(p, port, le_value(data, size), value, reason);
	}
	log_unhandled(p, "port", port, is_write);
	if (!is_write)
		memset(data, 0xff, size);
	return PLATFORM_CONTINUE;
}

static void boot_marker(struct platform *p)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	double ms = (double)(now.tv_sec - p->start.tv_sec) * 1e3 +
		    (double)(now.tv_nsec - p->start.tv_nsec) / 1e6;
	pthread_mutex_lock(&p->lock);
	unsigned int n = p->markers_logged;
	if (n < MARKERS_LOGGED_MAX)
		p->markers_logged++;
	pthread_mutex_unlock(&p->lock);
	if (n < MARKERS_LOGGED_MAX)
		log_info("boot marker: %.3f ms since flint-hv started", ms);
}

enum platform_action platform_mmio(struct platform *p, uint64_t addr, unsigned int len,
				   bool is_write, uint8_t *data)
{
	if (len == 0 || len > 8)
		return PLATFORM_CONTINUE;
	if (addr == FLINT_BOOT_MARKER_MMIO) {
		if (is_write && data[0] == FLINT_BOOT_MARKER_MAGIC)
			boot_marker(p);
		else if (!is_write)
			memset(data, 0, len);
		return PLATFORM_CONTINUE;
	}
	if (p->pci != NULL && pci_mmio(p->pci, addr, len, is_write, data))
		return PLATFORM_CONTINUE;
	log_unhandled(p, "MMIO", addr, is_write);
	if (!is_write)
		memset(data, 0xff, len);
	return PLATFORM_CONTINUE;
}

size_t platform_console_input(struct platform *p, const uint8_t *buf, size_t len)
{
	pthread_mutex_lock(&p->lock);
	size_t n = serial_rx_push(&p->com1, buf, len);
	pthread_mutex_unlock(&p->lock);
	return n;
}
