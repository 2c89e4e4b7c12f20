#include "user.h"

#include "layout.h"
#include "serial.h"
#include "util.h"

static uint64_t syscall2(uint64_t nr, uint64_t a0, uint64_t a1)
{
	uint64_t ret;

	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "a"(nr), "D"(a0), "S"(a1)
			 : "memory");
	return ret;
}

void user_write(const char *s, size_t len)
{
	syscall2(SYS_WRITE, (uintptr_t)s, len);
}

void user_puts(const char *s)
{
	user_write(s, strlen(s));
}

uint64_t syscall_dispatch(uint64_t a0, uint64_t a1, uint64_t a2, uint64_t nr)
{
	(void)a2;
	switch (nr) {
	case SYS_WRITE:
		if (a1 > 4096)
			return (uint64_t)-1;
		serial_write((const char *)(uintptr_t)a0, a1);
		return a1;
	default:
		return (uint64_t)-1;
	}
}
