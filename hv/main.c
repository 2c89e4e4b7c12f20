/*
 * flint-hv: one process per instance.  It reads its kernel and initrd,
 * builds guest RAM and the boot structures, creates the VM, then narrows
 * itself (no new privileges, not dumpable, no stray fds, seccomp) before the
 * guest runs.  From then on it only serves vCPU exits and console input.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "boot_image.h"
#include "boot_setup.h"
#include "config.h"
#include "exit_status.h"
#include "hv_seccomp.h"
#include "log.h"
#include "vm.h"

#define KERNEL_MAX_BYTES (1ULL << 30)
#define CONSOLE_RETRY_MS 10

static char err[512];

static uint8_t *read_kernel(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0) {
		snprintf(err, sizeof(err), "--kernel %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, sizeof(err), "--kernel %s: not a regular file", path);
		close(fd);
		return NULL;
	}
	if (st.st_size == 0 || (uint64_t)st.st_size > KERNEL_MAX_BYTES) {
		snprintf(err, sizeof(err), "--kernel %s: size %lld is outside 1..%llu bytes",
			 path, (long long)st.st_size, KERNEL_MAX_BYTES);
		close(fd);
		return NULL;
	}
	uint8_t *buf = malloc((size_t)st.st_size);
	size_t got = 0;
	while (buf != NULL && got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r <= 0) {
			snprintf(err, sizeof(err), "--kernel %s: short read", path);
			free(buf);
			buf = NULL;
			break;
		}
		got += (size_t)r;
	}
	if (buf == NULL && got == 0 && err[0] == '\0')
		snprintf(err, sizeof(err), "--kernel %s: out of memory", path);
	close(fd);
	*len = got;
	return buf;
}

/*
 * Places and copies the initrd straight into guest RAM.  A missing or
 * oversized initrd is a usage error; a failing read is the host's.
 */
static int load_initrd(struct guest_mem *gm, const struct boot_image *bi,
		       const char *path, struct boot_initrd *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0) {
		snprintf(err, sizeof(err), "--initrd %s: %s", path, strerror(errno));
		return HV_EXIT_USAGE;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
		snprintf(err, sizeof(err), "--initrd %s: not a non-empty regular file", path);
		close(fd);
		return HV_EXIT_USAGE;
	}
	uint64_t size = (uint64_t)st.st_size;
	if (boot_place_initrd(gm, bi, size, &out->gpa, err, sizeof(err)) != 0) {
		close(fd);
		return HV_EXIT_USAGE;
	}
	uint8_t *dst = guest_mem_ptr(gm, out->gpa, size);
	uint64_t got = 0;
	while (got < size) {
		ssize_t r = read(fd, dst + got, size - got);
		if (r <= 0) {
			snprintf(err, sizeof(err), "--initrd %s: read failed", path);
			close(fd);
			return HV_EXIT_INTERNAL;
		}
		got += (uint64_t)r;
	}
	close(fd);
	out->size = size;
	return 0;
}

/*
 * Returns 0, HV_EXIT_USAGE for anything wrong with the options or images,
 * or HV_EXIT_INTERNAL when the host could not provide memory or I/O.
 */
static int prepare_guest(const struct hv_config *cfg, struct guest_mem *gm,
			 struct boot_cpu_state *cpu)
{
	size_t len = 0;
	uint8_t *img = read_kernel(cfg->kernel_path, &len);
	struct boot_image bi;
	struct boot_initrd initrd = { 0, 0 };

	if (img == NULL)
		return HV_EXIT_USAGE;
	if (guest_mem_create(gm, cfg->mem_bytes) != 0) {
		snprintf(err, sizeof(err), "cannot allocate %llu MiB of guest RAM: %s",
			 (unsigned long long)(cfg->mem_bytes >> 20), strerror(errno));
		free(img);
		return HV_EXIT_INTERNAL;
	}
	/* The loaders' messages name the format and field; main adds the file. */
	char why[256];
	int rc = boot_image_load(img, len, gm, &bi, why, sizeof(why));
	free(img);
	if (rc != 0) {
		snprintf(err, sizeof(err), "--kernel %.200s: %.255s", cfg->kernel_path, why);
		return HV_EXIT_USAGE;
	}
	if (cfg->initrd_path != NULL) {
		rc = load_initrd(gm, &bi, cfg->initrd_path, &initrd);
		if (rc != 0)
			return rc;
	}
	if (boot_setup(gm, &bi, cfg->cmdline, &initrd, cfg->vcpus, cpu, err, sizeof(err)) != 0)
		return HV_EXIT_USAGE;
	return 0;
}

/*
 * The process keeps stdin, stdout, stderr, the --blk fd=N channels it was
 * handed and what it opens itself; the guest never reaches anything
 * inherited by accident.
 */
static void close_fd_range(unsigned int first, unsigned int last)
{
	if (first > last)
		return;
	if (close_range(first, last, 0) == 0)
		return;
	for (unsigned int fd = first; fd <= last && fd < 1024; fd++)
		close((int)fd);
}

static void close_inherited_fds(const struct hv_config *cfg)
{
	int keep[HV_BLK_MAX];
	unsigned int n = 0;

	for (unsigned int i = 0; i < cfg->nr_blk; i++) {
		if (cfg->blk[i].fd < 0)
			continue;
		unsigned int j = n++;
		for (; j > 0 && keep[j - 1] > cfg->blk[i].fd; j--)
			keep[j] = keep[j - 1];
		keep[j] = cfg->blk[i].fd;
	}
	unsigned int from = 3;
	for (unsigned int i = 0; i < n; i++) {
		close_fd_range(from, (unsigned int)keep[i] - 1);
		from = (unsigned int)keep[i] + 1;
	}
	close_fd_range(from, ~0U);
}

/*
 * Connects to and negotiates with every --blk back end.  Like reading the
 * kernel file, this happens only at set-up: under seccomp flint-hv cannot
 * create a socket.  With fd=N the channel is inherited already connected,
 * as the controller will hand it down (HV-7).
 */
static int open_blk_devices(const struct hv_config *cfg, struct vm *vm)
{
	for (unsigned int i = 0; i < cfg->nr_blk; i++) {
		const struct hv_blk_config *b = &cfg->blk[i];
		char label[16];
		struct vuf *f = calloc(1, sizeof(*f));
		if (f == NULL) {
			snprintf(err, sizeof(err), "--blk: out of memory");
			return -1;
		}
		char where[HV_BLK_PATH_MAX + 1];
		snprintf(label, sizeof(label), "blk%u", i);
		if (b->fd >= 0)
			snprintf(where, sizeof(where), "fd %d", b->fd);
		else
			snprintf(where, sizeof(where), "%s", b->socket_path);
		int s = b->fd >= 0 ? vuf_adopt_fd(b->fd, err, sizeof(err))
				   : vuf_connect(b->socket_path, err, sizeof(err));
		if (s < 0 || vuf_setup(f, s, label, where, b->queues, &vm->mem,
				       err, sizeof(err)) != 0) {
			free(f);
			return -1;
		}
		vm->blk[i] = f;
		vm->blk_socks[i] = s;
		vm->nr_blk = i + 1;
	}
	return 0;
}

static int attach_blk_devices(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nr_blk; i++)
		if (vuf_attach(vm->blk[i], &vm->pci, err, sizeof(err)) != 0)
			return -1;
	return 0;
}

static int narrow_process(void)
{
	/* Not dumpable: no core file with guest RAM, no ptrace by the same uid. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		return -1;
	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

/*
 * Moves stdin into the UART.  Bytes the FIFO cannot take yet (the guest has
 * not drained it, or filled it itself in loopback) are kept and retried.
 */
static void console_loop(struct platform *p)
{
	struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
	uint8_t buf[SERIAL_RX_FIFO];
	size_t have = 0, off = 0;
	bool eof = false;

	while (!eof || have > off) {
		if (have > off) {
			off += platform_console_input(p, buf + off, have - off);
			if (have > off) {
				poll(NULL, 0, CONSOLE_RETRY_MS);
				continue;
			}
			have = off = 0;
		}
		int n = poll(&pfd, 1, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (pfd.revents & (POLLERR | POLLNVAL))) {
			eof = true;
			continue;
		}
		ssize_t r = read(STDIN_FILENO, buf, sizeof(buf));
		if (r <= 0)
			eof = true;
		else
			have = (size_t)r;
	}
	/* No more input (EOF or none): the vCPU threads decide when we end. */
	for (;;)
		poll(NULL, 0, -1);
}

int main(int argc, char **argv)
{
	struct timespec start;
	struct hv_config cfg;
	static struct vm vm;
	struct boot_cpu_state cpu;

	clock_gettime(CLOCK_MONOTONIC, &start);
	log_init("flint-hv", LOG_INFO);
	signal(SIGPIPE, SIG_IGN);
	if (hv_config_parse(&cfg, argc, argv, err, sizeof(err)) != 0) {
		log_err("%s", err);
		return HV_EXIT_USAGE;
	}
	if (cfg.help) {
		hv_config_usage(argv[0]);
		return 0;
	}
	if (cfg.version) {
		printf("flint-hv %s\n", FLINT_VERSION);
		return 0;
	}
	log_set_level((enum log_level)cfg.log_level);
	close_inherited_fds(&cfg);

	int rc = prepare_guest(&cfg, &vm.mem, &cpu);
	if (rc != 0) {
		log_err("%s", err);
		return rc;
	}
	if (open_blk_devices(&cfg, &vm) != 0) {
		log_err("%s", err);
		return HV_EXIT_INTERNAL;
	}
	vm.nr_vcpus = cfg.vcpus;
	vm.console_fd = STDOUT_FILENO;
	if (vm_create(&vm, &cfg, err, sizeof(err)) != 0 ||
	    vm_create_vcpus(&vm, &cpu, err, sizeof(err)) != 0) {
		log_err("%s", err);
		return HV_EXIT_INTERNAL;
	}
	/* Everything KVM-wide is set up: the system fd is no longer needed. */
	close(vm.kvm_fd);
	vm.kvm_fd = -1;
	platform_init(&vm.platform, vm.vm_fd, vm.console_fd, cfg.debug_exit, &start);
	/* The bus (host bridge only, for now) that MCFG and the DSDT describe. */
	pci_bus_init(&vm.pci, vm.vm_fd, NULL, NULL);
	platform_attach_pci(&vm.platform, &vm.pci);
	/* virtio-blk devices served by cards; creates their eventfds. */
	if (attach_blk_devices(&vm) != 0) {
		log_err("%s", err);
		return HV_EXIT_INTERNAL;
	}
	if (narrow_process() != 0) {
		log_errno("prctl");
		return HV_EXIT_INTERNAL;
	}
	if (vm_start(&vm, err, sizeof(err)) != 0) {
		log_err("%s", err);
		return HV_EXIT_INTERNAL;
	}
	if (hv_seccomp_install_main(vm.console_fd) != 0)
		vm_exit(HV_EXIT_INTERNAL, "cannot install the main seccomp filter");
	console_loop(&vm.platform);
	return HV_EXIT_INTERNAL;
}
