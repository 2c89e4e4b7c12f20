/*
 * NBD wire encode/decode: pure functions, every input length checked before
 * a byte is read.  See nbd_proto.h.
 */
#include "nbd_proto.h"

#include <errno.h>
#include <string.h>

void nbd_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

void nbd_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void nbd_put64(uint8_t *p, uint64_t v)
{
	nbd_put32(p, (uint32_t)(v >> 32));
	nbd_put32(p + 4, (uint32_t)v);
}

uint16_t nbd_get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

uint32_t nbd_get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

uint64_t nbd_get64(const uint8_t *p)
{
	return ((uint64_t)nbd_get32(p) << 32) | nbd_get32(p + 4);
}

void nbd_encode_greeting(uint8_t out[NBD_GREETING_LEN], uint16_t hflags)
{
	nbd_put64(out, NBD_MAGIC);
	nbd_put64(out + 8, NBD_IHAVEOPT);
	nbd_put16(out + 16, hflags);
}

int nbd_decode_greeting(const uint8_t *buf, size_t len, uint16_t *hflags)
{
	if (buf == NULL || len < NBD_GREETING_LEN)
		return -EINVAL;
	if (nbd_get64(buf) != NBD_MAGIC || nbd_get64(buf + 8) != NBD_IHAVEOPT)
		return -EPROTO; /* oldstyle or not NBD at all */
	*hflags = nbd_get16(buf + 16);
	return 0;
}

void nbd_encode_opt_hdr(uint8_t out[NBD_OPT_HDR_LEN], uint32_t option, uint32_t length)
{
	nbd_put64(out, NBD_IHAVEOPT);
	nbd_put32(out + 8, option);
	nbd_put32(out + 12, length);
}

int nbd_decode_opt_hdr(const uint8_t *buf, size_t len, uint32_t *option, uint32_t *length)
{
	if (buf == NULL || len < NBD_OPT_HDR_LEN)
		return -EINVAL;
	if (nbd_get64(buf) != NBD_IHAVEOPT)
		return -EPROTO;
	*option = nbd_get32(buf + 8);
	*length = nbd_get32(buf + 12);
	if (*length > NBD_MAX_OPT_LEN)
		return -E2BIG;
	return 0;
}

void nbd_encode_opt_reply(uint8_t out[NBD_OPT_REPLY_HDR_LEN], uint32_t option,
			  uint32_t type, uint32_t length)
{
	nbd_put64(out, NBD_OPT_REPLY_MAGIC);
	nbd_put32(out + 8, option);
	nbd_put32(out + 12, type);
	nbd_put32(out + 16, length);
}

int nbd_decode_opt_reply(const uint8_t *buf, size_t len, struct nbd_opt_reply *r)
{
	if (buf == NULL || len < NBD_OPT_REPLY_HDR_LEN)
		return -EINVAL;
	if (nbd_get64(buf) != NBD_OPT_REPLY_MAGIC)
		return -EPROTO;
	r->option = nbd_get32(buf + 8);
	r->type = nbd_get32(buf + 12);
	r->length = nbd_get32(buf + 16);
	if (r->length > NBD_MAX_OPT_REPLY_LEN)
		return -E2BIG;
	return 0;
}

int nbd_encode_go_payload(uint8_t *out, size_t cap, const char *name,
			  const uint16_t *infos, uint16_t ninfos)
{
	size_t nlen = name ? strlen(name) : 0;
	if (nlen > NBD_MAX_NAME_LEN || (ninfos && infos == NULL))
		return -EINVAL;
	size_t need = 4 + nlen + 2 + 2 * (size_t)ninfos;
	if (out == NULL || need > cap)
		return -ENOSPC;
	nbd_put32(out, (uint32_t)nlen);
	if (nlen)
		memcpy(out + 4, name, nlen);
	nbd_put16(out + 4 + nlen, ninfos);
	for (uint16_t i = 0; i < ninfos; i++)
		nbd_put16(out + 6 + nlen + 2 * (size_t)i, infos[i]);
	return (int)need;
}

int nbd_parse_go_payload(const uint8_t *buf, size_t len, char *name, size_t namecap,
			 int *want_block_size)
{
	if (buf == NULL || len < 6 || name == NULL || namecap == 0)
		return -EINVAL;
	uint32_t nlen = nbd_get32(buf);
	if (nlen > len - 6)
		return -EINVAL;
	if ((size_t)nlen >= namecap)
		return -E2BIG;
	if (memchr(buf + 4, 0, nlen) != NULL)
		return -EINVAL;
	memcpy(name, buf + 4, nlen);
	name[nlen] = '\0';
	size_t pos = 4 + (size_t)nlen;
	uint16_t n = nbd_get16(buf + pos);
	pos += 2;
	if ((size_t)n * 2 != len - pos)
		return -EINVAL;
	*want_block_size = 0;
	for (uint16_t i = 0; i < n; i++)
		if (nbd_get16(buf + pos + 2 * (size_t)i) == NBD_INFO_BLOCK_SIZE)
			*want_block_size = 1;
	return 0;
}

size_t nbd_encode_info_export(uint8_t out[12], uint64_t size, uint16_t flags)
{
	nbd_put16(out, NBD_INFO_EXPORT);
	nbd_put64(out + 2, size);
	nbd_put16(out + 10, flags);
	return 12;
}

size_t nbd_encode_info_block_size(uint8_t out[14], uint32_t min, uint32_t pref, uint32_t max)
{
	nbd_put16(out, NBD_INFO_BLOCK_SIZE);
	nbd_put32(out + 2, min);
	nbd_put32(out + 6, pref);
	nbd_put32(out + 10, max);
	return 14;
}

static int is_pow2(uint32_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

int nbd_parse_info(const uint8_t *buf, size_t len, struct nbd_export_info *info)
{
	if (buf == NULL || len < 2 || info == NULL)
		return -EINVAL;
	switch (nbd_get16(buf)) {
	case NBD_INFO_EXPORT:
		if (len != 12)
			return -EPROTO;
		info->size = nbd_get64(buf + 2);
		info->flags = nbd_get16(buf + 10);
		if (!(info->flags & NBD_FLAG_HAS_FLAGS))
			return -EPROTO;
		info->have_export = 1;
		return 0;
	case NBD_INFO_BLOCK_SIZE: {
		if (len != 14)
			return -EPROTO;
		uint32_t min = nbd_get32(buf + 2), pref = nbd_get32(buf + 6);
		uint32_t max = nbd_get32(buf + 10);
		if (!is_pow2(min) || min > 65536 || !is_pow2(pref) || pref < min ||
		    max < min || (max != 0xffffffffU && max % min != 0))
			return -EPROTO;
		info->min_block = min;
		info->pref_block = pref;
		info->max_block = max;
		info->have_block_size = 1;
		return 0;
	}
	case NBD_INFO_NAME:
	case NBD_INFO_DESCRIPTION:
	default:
		return 0; /* not needed by Flint; ignored */
	}
}

int nbd_decode_export_name_reply(const uint8_t *buf, size_t len, struct nbd_export_info *info)
{
	if (buf == NULL || len < NBD_EXPORT_NAME_REPLY_LEN || info == NULL)
		return -EINVAL;
	info->size = nbd_get64(buf);
	info->flags = nbd_get16(buf + 8);
	if (!(info->flags & NBD_FLAG_HAS_FLAGS))
		return -EPROTO;
	info->have_export = 1;
	return 0;
}

void nbd_encode_request(uint8_t out[NBD_REQUEST_LEN], const struct nbd_request *r)
{
	nbd_put32(out, NBD_REQUEST_MAGIC);
	nbd_put16(out + 4, r->flags);
	nbd_put16(out + 6, r->type);
	nbd_put64(out + 8, r->handle);
	nbd_put64(out + 16, r->offset);
	nbd_put32(out + 24, r->length);
}

int nbd_decode_request(const uint8_t *buf, size_t len, struct nbd_request *r)
{
	if (buf == NULL || len < NBD_REQUEST_LEN || r == NULL)
		return -EINVAL;
	if (nbd_get32(buf) != NBD_REQUEST_MAGIC)
		return -EPROTO;
	r->flags = nbd_get16(buf + 4);
	r->type = nbd_get16(buf + 6);
	r->handle = nbd_get64(buf + 8);
	r->offset = nbd_get64(buf + 16);
	r->length = nbd_get32(buf + 24);
	return 0;
}

void nbd_encode_simple_reply(uint8_t out[NBD_SIMPLE_REPLY_LEN], uint32_t error, uint64_t handle)
{
	nbd_put32(out, NBD_SIMPLE_REPLY_MAGIC);
	nbd_put32(out + 4, error);
	nbd_put64(out + 8, handle);
}

int nbd_decode_simple_reply(const uint8_t *buf, size_t len, struct nbd_simple_reply *r)
{
	if (buf == NULL || len < NBD_SIMPLE_REPLY_LEN || r == NULL)
		return -EINVAL;
	if (nbd_get32(buf) != NBD_SIMPLE_REPLY_MAGIC)
		return -EPROTO;
	r->error = nbd_get32(buf + 4);
	r->handle = nbd_get64(buf + 8);
	return 0;
}

int nbd_error_to_errno(uint32_t err)
{
	switch (err) {
	case 0: return 0;
	case NBD_EPERM: return -EPERM;
	case NBD_EIO: return -EIO;
	case NBD_ENOMEM: return -ENOMEM;
	case NBD_EINVAL: return -EINVAL;
	case NBD_ENOSPC: return -ENOSPC;
	case NBD_EOVERFLOW: return -EOVERFLOW;
	case NBD_ENOTSUP: return -EOPNOTSUPP;
	case NBD_ESHUTDOWN: return -ESHUTDOWN;
	default: return -EIO;
	}
}

uint32_t nbd_errno_to_error(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case 0: return 0;
	case EPERM: case EROFS: return NBD_EPERM;
	case ENOMEM: return NBD_ENOMEM;
	case EINVAL: return NBD_EINVAL;
	case ENOSPC: case EFBIG: return NBD_ENOSPC;
	case EOVERFLOW: return NBD_EOVERFLOW;
	case EOPNOTSUPP: return NBD_ENOTSUP;
	case ESHUTDOWN: return NBD_ESHUTDOWN;
	default: return NBD_EIO;
	}
}

int nbd_range_ok(uint64_t offset, uint64_t length, uint64_t size)
{
	if (offset > size || length > size - offset)
		return -EINVAL;
	return 0;
}
