/*
 * flint-hv's vhost-user front end against a back end nobody here wrote:
 * qemu-storage-daemon's vhost-user-blk export of a raw image file.  The test
 * plays the guest driver: two queues, a pattern written on queue 1 and read
 * back on queue 0, the image file checked on the host, then a device reset.
 * Exits 77 (skip) when qemu-storage-daemon is not installed.
 *
 * usage: test_vhost_user_front_qsd [QSD_PATH]
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest_mem.h"
#include "log.h"
#include "vhost_user_front.h"
#include "test_vhost_user_front_driver.h"

#define RAM (16ull << 20)
#define IMG_BYTES (8ull << 20)
#define DATA_GPA 0x100000ull
#define SECTOR 24
#define LEN 8192

static pid_t qsd = -1;
static char dir[] = "/tmp/flint-vuf-qsd.XXXXXX";
static char img[128], sock[128];

static void cleanup(void)
{
	if (qsd > 0) {
		kill(qsd, SIGTERM);
		waitpid(qsd, NULL, 0);
		qsd = -1;
	}
	unlink(sock);
	unlink(img);
	rmdir(dir);
}

static int fail(const char *what)
{
	fprintf(stderr, "FAIL: %s\n", what);
	cleanup();
	return 1;
}

static int start_qsd(const char *prog)
{
	char blockdev[256], exp[256];
	snprintf(blockdev, sizeof(blockdev), "driver=file,node-name=f,filename=%s", img);
	snprintf(exp, sizeof(exp), "type=vhost-user-blk,id=e,node-name=f,addr.type=unix,"
		 "addr.path=%s,writable=on,num-queues=2", sock);
	qsd = fork();
	if (qsd < 0)
		return -1;
	if (qsd == 0) {
		execl(prog, prog, "--blockdev", blockdev, "--export", exp, (char *)NULL);
		_exit(127);
	}
	/* Wait up to 10 s for the socket. */
	for (int i = 0; i < 200; i++) {
		struct stat st;
		if (stat(sock, &st) == 0 && S_ISSOCK(st.st_mode))
			return 0;
		if (waitpid(qsd, NULL, WNOHANG) == qsd) {
			qsd = -1;
			return -1;
		}
		usleep(50000);
	}
	return -1;
}

int main(int argc, char **argv)
{
	const char *prog = argc > 1 ? argv[1] : "/usr/bin/qemu-storage-daemon";
	static struct vuf f;
	struct guest_mem gm;
	char err[256];
	struct drv_queue q0 = { .kick = -1, .call = -1 }, q1 = { .kick = -1, .call = -1 };

	log_init("test-vuf-qsd", LOG_INFO);
	if (access(prog, X_OK) != 0) {
		fprintf(stderr, "SKIP: *** %s not found: install qemu-utils to run the "
			"vhost-user interop test ***\n", prog);
		return 77;
	}
	if (mkdtemp(dir) == NULL)
		return fail("mkdtemp");
	snprintf(img, sizeof(img), "%s/disk.img", dir);
	snprintf(sock, sizeof(sock), "%s/vhost.sock", dir);
	int fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, IMG_BYTES) != 0)
		return fail("create image");
	if (start_qsd(prog) != 0)
		return fail("qemu-storage-daemon did not start");

	if (guest_mem_create(&gm, RAM) != 0)
		return fail("guest_mem_create");
	int s = vuf_connect(sock, err, sizeof(err));
	if (s < 0 || vuf_setup(&f, s, "blk0", sock, 2, &gm, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return fail("vuf_setup");
	}
	uint64_t cap;
	uint16_t nq;
	vuf_ops.get_config(&f, 0, (uint8_t *)&cap, 8);
	vuf_ops.get_config(&f, 34, (uint8_t *)&nq, 2);
	uint64_t feat = vuf_ops.get_features(&f);
	printf("qsd: capacity %llu sectors, num_queues %u, guest features 0x%llx, "
	       "protocol 0x%llx\n", (unsigned long long)cap, nq, (unsigned long long)feat,
	       (unsigned long long)f.protocol_features);
	if (cap != IMG_BYTES / 512 || nq != 2)
		return fail("config");
	if (vuf_ops.set_features(&f, feat | (1ULL << VIRTIO_F_VERSION_1)) != 0)
		return fail("SET_FEATURES");
	if (drv_queue_start(&f, &gm, &q0, 0, 0x10000) != 0 ||
	    drv_queue_start(&f, &gm, &q1, 1, 0x20000) != 0)
		return fail("queue start");

	uint8_t *data = guest_mem_ptr(&gm, DATA_GPA, 2 * LEN);
	for (int i = 0; i < LEN; i++)
		data[i] = (uint8_t)(i * 13 + 5);
	int st = drv_request(&gm, &q1, DRV_T_OUT, SECTOR, DATA_GPA, LEN, 5000);
	if (st != 0) {
		fprintf(stderr, "write status %d\n", st);
		return fail("write");
	}
	memset(data + LEN, 0, LEN);
	st = drv_request(&gm, &q0, DRV_T_IN, SECTOR, DATA_GPA + LEN, LEN, 5000);
	if (st != 0 || memcmp(data, data + LEN, LEN) != 0)
		return fail("read back");

	/* The image on the host holds the pattern (qsd writes through). */
	uint8_t onfile[LEN];
	if (pread(fd, onfile, LEN, SECTOR * 512) != LEN || memcmp(onfile, data, LEN) != 0)
		return fail("image contents");
	close(fd);

	/* Reset stops both queues (GET_VRING_BASE); qsd stays connected. */
	vuf_ops.reset(&f);
	if (f.broken)
		return fail("reset");
	/* qsd going away at run time: the next start fails cleanly. */
	kill(qsd, SIGKILL);
	waitpid(qsd, NULL, 0);
	qsd = -1;
	if (vuf_ops.set_features(&f, feat | (1ULL << VIRTIO_F_VERSION_1)) == 0 &&
	    drv_queue_start(&f, &gm, &q0, 0, 0x10000) == 0)
		return fail("start after qsd died");
	if (!f.broken)
		return fail("not marked broken");

	drv_queue_close(&q0);
	drv_queue_close(&q1);
	vuf_close(&f);
	guest_mem_destroy(&gm);
	cleanup();
	printf("PASS: write %d bytes on queue 1, read back on queue 0, image checked\n", LEN);
	return 0;
}
