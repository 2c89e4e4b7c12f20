#include "printf.h"

#include <stdbool.h>
#include <stdint.h>

#include "serial.h"

struct sink {
	void (*put)(struct sink *s, char c);
	char *buf;
	size_t size;
	size_t pos; /* characters produced (may exceed size) */
};

static void put_serial(struct sink *s, char c)
{
	serial_putc(c);
	s->pos++;
}

static void put_buf(struct sink *s, char c)
{
	if (s->pos + 1 < s->size)
		s->buf[s->pos] = c;
	s->pos++;
}

static void emit_padded(struct sink *s, const char *str, size_t len,
			int width, bool left, char pad)
{
	int fill = width > (int)len ? width - (int)len : 0;

	if (!left)
		while (fill-- > 0)
			s->put(s, pad);
	while (len--)
		s->put(s, *str++);
	if (left)
		while (fill-- > 0)
			s->put(s, ' ');
}

static void format(struct sink *s, const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			s->put(s, *fmt);
			continue;
		}
		fmt++;
		bool left = false;
		char pad = ' ';
		for (;; fmt++) {
			if (*fmt == '-')
				left = true;
			else if (*fmt == '0')
				pad = '0';
			else
				break;
		}
		int width = 0;
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		int lng = 0;
		while (*fmt == 'l' || *fmt == 'z') {
			lng++;
			fmt++;
		}

		char tmp[24];
		char *end = tmp + sizeof(tmp), *p = end;
		uint64_t u;
		bool neg = false;
		unsigned base = 10;
		bool upper = false;

		switch (*fmt) {
		case '\0':
			return;
		case '%':
			s->put(s, '%');
			continue;
		case 'c':
			tmp[0] = (char)va_arg(ap, int);
			emit_padded(s, tmp, 1, width, left, ' ');
			continue;
		case 's': {
			const char *str = va_arg(ap, const char *);
			size_t n = 0;
			if (!str)
				str = "(null)";
			while (str[n])
				n++;
			emit_padded(s, str, n, width, left, ' ');
			continue;
		}
		case 'd':
		case 'i': {
			int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			neg = v < 0;
			u = neg ? -(uint64_t)v : (uint64_t)v;
			break;
		}
		case 'p':
			u = (uintptr_t)va_arg(ap, void *);
			base = 16;
			s->put(s, '0');
			s->put(s, 'x');
			break;
		case 'X':
			upper = true;
			/* fall through */
		case 'x':
			base = 16;
			/* fall through */
		case 'u':
			u = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned int);
			break;
		default:
			s->put(s, '%');
			s->put(s, *fmt);
			continue;
		}
		const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
		do {
			*--p = digits[u % base];
			u /= base;
		} while (u);
		if (neg) {
			if (pad == '0') {
				s->put(s, '-');
				width--;
			} else {
				*--p = '-';
			}
		}
		emit_padded(s, p, (size_t)(end - p), width, left, pad);
	}
}

int kprintf(const char *fmt, ...)
{
	struct sink s = { .put = put_serial };
	va_list ap;

	va_start(ap, fmt);
	format(&s, fmt, ap);
	va_end(ap);
	return (int)s.pos;
}

int kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct sink s = { .put = put_buf, .buf = buf, .size = size };

	format(&s, fmt, ap);
	if (size)
		buf[s.pos < size ? s.pos : size - 1] = '\0';
	return (int)s.pos;
}

int ksnprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = kvsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}
