/*
 * The virtio 1.x PCI transport ("modern" only): vendor 0x1af4, device
 * 0x1040 + type, the common/notify/ISR/device capabilities in BAR 0 (64-bit,
 * 16 KiB) and the MSI-X table in BAR 2 (32-bit, 4 KiB), one vector per queue
 * plus one for configuration changes.
 *
 * flint-hv keeps only the control path: the common configuration state
 * machine, feature negotiation and the device configuration window.  The data
 * path bypasses it: each queue's notify address is bound to a kick eventfd
 * (KVM_IOEVENTFD), and each queue's call eventfd is bound to the GSI of the
 * queue's MSI-X vector (KVM_IRQFD) while that vector is unmasked.  While it
 * is masked (vector, function mask or MSI-X off) the call eventfd is
 * unbound: the card's signals wait in its counter, the PBA shows them, and
 * KVM injects them when the vector is unmasked and the eventfd bound again.
 * Whoever holds those eventfds (a card, through the vhost-user front end)
 * serves the queue.
 *
 * The device model itself is behind struct virtio_backend_ops.  Every call
 * happens with the PCI bus lock held, on a vCPU thread under seccomp.
 */
#ifndef FLINT_HV_VIRTIO_PCI_H
#define FLINT_HV_VIRTIO_PCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The modern transport only: no legacy I/O-port register names. */
#define VIRTIO_PCI_NO_LEGACY
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>

/* virtio 1.1 (6.3.2); newer uapi headers than Debian 12's have it. */
#ifndef VIRTIO_F_NOTIFICATION_DATA
#define VIRTIO_F_NOTIFICATION_DATA 38
#endif

#include "pci.h"
#include "pci_msix.h"

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040
#define VIRTIO_PCI_QUEUES_MAX 16
#define VIRTIO_PCI_QUEUE_SIZE_MAX 32768
#define VIRTIO_PCI_DEVICE_CFG_MAX 0x1000

/* BAR 0 layout (offsets of the four capability regions). */
#define VIRTIO_PCI_BAR 0
#define VIRTIO_PCI_BAR_SIZE 0x4000
#define VIRTIO_PCI_COMMON_OFF 0x0000
#define VIRTIO_PCI_COMMON_LEN 0x38
#define VIRTIO_PCI_ISR_OFF 0x1000
#define VIRTIO_PCI_DEVICE_OFF 0x2000
#define VIRTIO_PCI_NOTIFY_OFF 0x3000
#define VIRTIO_PCI_NOTIFY_MULTIPLIER 4
/* BAR 2: MSI-X table and PBA. */
#define VIRTIO_PCI_MSIX_BAR 2
#define VIRTIO_PCI_MSIX_BAR_SIZE 0x1000
#define VIRTIO_PCI_MSIX_PBA_OFF 0x800

/* What a back end gets when the driver enables a queue. */
struct virtio_pci_queue_info {
	unsigned int index;
	uint16_t size;
	uint64_t desc, driver, device; /* guest-physical, alignment checked */
	int kick_fd; /* KVM signals it on every notify of this queue */
	int call_fd; /* signal it to interrupt the guest; -1: no MSI-X vector
		      * (or KVM refused the irqfd) */
};

/*
 * The device behind the transport (later: the vhost-user front end talking
 * to a card).  be is the back end's own pointer.  Config offsets and lengths
 * are checked against config_size by the transport.
 */
struct virtio_backend_ops {
	/* Device feature bits; the transport adds VIRTIO_F_VERSION_1. */
	uint64_t (*get_features)(void *be);
	/* The driver's accepted subset (at FEATURES_OK); nonzero refuses it. */
	int (*set_features)(void *be, uint64_t features);
	void (*get_config)(void *be, uint32_t off, uint8_t *buf, uint32_t len);
	void (*set_config)(void *be, uint32_t off, const uint8_t *buf, uint32_t len);
	/* A queue went live; nonzero sets DEVICE_NEEDS_RESET. */
	int (*queue_start)(void *be, const struct virtio_pci_queue_info *q);
	/* The driver set DRIVER_OK (optional, may be NULL). */
	void (*driver_ok)(void *be);
	/* Device reset (status 0): stop every queue, forget the features. */
	void (*reset)(void *be);
};

struct virtio_pci_params {
	uint16_t device_type;      /* virtio device ID, e.g. 2 for block */
	uint32_t class_code;       /* PCI class, e.g. 0x018000 */
	unsigned int nr_queues;    /* 1..VIRTIO_PCI_QUEUES_MAX */
	uint16_t queue_size_max;   /* power of two, <= VIRTIO_PCI_QUEUE_SIZE_MAX */
	uint32_t config_size;      /* device-specific config, <= VIRTIO_PCI_DEVICE_CFG_MAX */
	const struct virtio_backend_ops *ops;
	void *be;
};

struct virtio_pci_queue {
	uint16_t size;
	uint16_t msix_vector;
	bool enabled;
	uint64_t desc, driver, device;
	int kick_fd, call_fd;
	bool irqfd_bound;
	uint32_t irqfd_gsi;
	bool ioeventfd_bound;
	uint64_t ioeventfd_addr;
};

struct virtio_pci {
	struct pci_device pci;
	struct pci_msix msix;
	struct virtio_pci_params p;
	uint32_t device_feature_select;
	uint32_t driver_feature_select;
	uint64_t driver_features;
	uint16_t config_msix_vector;
	uint16_t queue_select;
	uint8_t status;
	uint8_t config_generation;
	struct virtio_pci_queue q[VIRTIO_PCI_QUEUES_MAX];
	unsigned int kvm_errors;
};

/*
 * Builds the device (config space, capabilities, MSI-X, one kick and one call
 * eventfd per queue) and puts it on bus.  Call before the guest runs: it
 * creates file descriptors.  0, or -1 with a reason in err.
 */
int virtio_pci_init(struct virtio_pci *vp, struct pci_bus *bus,
		    const struct virtio_pci_params *p, char *err, size_t errlen);

/* Closes the eventfds (for tests and failed set-up; not while the guest runs). */
void virtio_pci_close(struct virtio_pci *vp);

#endif
