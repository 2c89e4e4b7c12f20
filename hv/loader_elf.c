/*
 * ELF64 loader for kernels with a PVH entry (XEN_ELFNOTE_PHYS32_ENTRY): a
 * decompressed Linux vmlinux or the Flint test guest.  Every header field is
 * checked against the file and against guest RAM before anything is copied.
 */
#include <elf.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "boot_image.h"
#include "boot_layout.h"
#include "flint/pvh_abi.h"

#define ELF_MAX_PHDRS 64

static int check_ehdr(const Elf64_Ehdr *eh, size_t len, char *err, size_t errlen)
{
	if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB) {
		snprintf(err, errlen, "ELF: not a little-endian ELF64 file");
		return -1;
	}
	if (eh->e_machine != EM_X86_64 || eh->e_type != ET_EXEC) {
		snprintf(err, errlen, "ELF: e_machine %u e_type %u: need an x86-64 executable",
			 eh->e_machine, eh->e_type);
		return -1;
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 ||
	    eh->e_phnum > ELF_MAX_PHDRS) {
		snprintf(err, errlen, "ELF: e_phentsize %u e_phnum %u out of range",
			 eh->e_phentsize, eh->e_phnum);
		return -1;
	}
	uint64_t ph_bytes = (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr);
	if (eh->e_phoff > len || ph_bytes > len - eh->e_phoff) {
		snprintf(err, errlen, "ELF: program headers at 0x%" PRIx64
			 " run past the end of the file (%zu bytes)", (uint64_t)eh->e_phoff, len);
		return -1;
	}
	return 0;
}

/* Looks for the Xen PHYS32 entry note in one PT_NOTE segment. */
static int find_pvh_note(const uint8_t *img, const Elf64_Phdr *ph, uint64_t *entry)
{
	const uint8_t *p = img + ph->p_offset;
	uint64_t left = ph->p_filesz;

	while (left >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr nh;
		memcpy(&nh, p, sizeof(nh));
		uint64_t name_sz = ((uint64_t)nh.n_namesz + 3) & ~3ULL;
		uint64_t desc_sz = ((uint64_t)nh.n_descsz + 3) & ~3ULL;
		left -= sizeof(nh);
		p += sizeof(nh);
		if (name_sz > left || desc_sz > left - name_sz)
			return -1;
		if (nh.n_type == XEN_ELFNOTE_PHYS32_ENTRY && nh.n_namesz == 4 &&
		    memcmp(p, "Xen", 4) == 0 && (nh.n_descsz == 4 || nh.n_descsz == 8)) {
			uint32_t e32;
			memcpy(&e32, p + name_sz, sizeof(e32));
			*entry = e32;
			return 0;
		}
		p += name_sz + desc_sz;
		left -= name_sz + desc_sz;
	}
	return -1;
}

static int check_load_segment(const Elf64_Phdr *ph, unsigned int idx, size_t len,
			      const struct guest_mem *gm, char *err, size_t errlen)
{
	if (ph->p_offset > len || ph->p_filesz > len - ph->p_offset) {
		snprintf(err, errlen, "ELF: segment %u: file range 0x%" PRIx64 "+0x%" PRIx64
			 " runs past the end of the file (%zu bytes)",
			 idx, (uint64_t)ph->p_offset, (uint64_t)ph->p_filesz, len);
		return -1;
	}
	if (ph->p_filesz > ph->p_memsz) {
		snprintf(err, errlen, "ELF: segment %u: p_filesz 0x%" PRIx64
			 " > p_memsz 0x%" PRIx64, idx, (uint64_t)ph->p_filesz,
			 (uint64_t)ph->p_memsz);
		return -1;
	}
	if (ph->p_paddr < BOOT_KERNEL_ADDR) {
		snprintf(err, errlen, "ELF: segment %u: p_paddr 0x%" PRIx64
			 " below 1 MiB overlaps boot structures", idx, (uint64_t)ph->p_paddr);
		return -1;
	}
	if (ph->p_memsz == 0 || guest_mem_ptr(gm, ph->p_paddr, ph->p_memsz) == NULL) {
		snprintf(err, errlen, "ELF: segment %u: 0x%" PRIx64 "+0x%" PRIx64
			 " does not fit in guest RAM", idx, (uint64_t)ph->p_paddr,
			 (uint64_t)ph->p_memsz);
		return -1;
	}
	return 0;
}

static int segments_overlap(const Elf64_Phdr *a, const Elf64_Phdr *b)
{
	return a->p_paddr < b->p_paddr + b->p_memsz && b->p_paddr < a->p_paddr + a->p_memsz;
}

int boot_load_pvh_elf(const uint8_t *img, size_t len, struct guest_mem *gm,
		      struct boot_image *bi, char *err, size_t errlen)
{
	Elf64_Ehdr eh;
	Elf64_Phdr phs[ELF_MAX_PHDRS];
	const Elf64_Phdr *loads[ELF_MAX_PHDRS];
	unsigned int nloads = 0;
	uint64_t entry = 0, end = 0;
	int have_entry = 0;

	if (len < sizeof(eh)) {
		snprintf(err, errlen, "ELF: truncated: %zu bytes", len);
		return -1;
	}
	memcpy(&eh, img, sizeof(eh));
	if (check_ehdr(&eh, len, err, errlen) != 0)
		return -1;
	memcpy(phs, img + eh.e_phoff, eh.e_phnum * sizeof(Elf64_Phdr));

	for (unsigned int i = 0; i < eh.e_phnum; i++) {
		const Elf64_Phdr *ph = &phs[i];
		if (ph->p_type == PT_NOTE) {
			if (ph->p_offset > len || ph->p_filesz > len - ph->p_offset) {
				snprintf(err, errlen, "ELF: note segment %u runs past the end "
					 "of the file", i);
				return -1;
			}
			if (!have_entry && find_pvh_note(img, ph, &entry) == 0)
				have_entry = 1;
			continue;
		}
		if (ph->p_type != PT_LOAD)
			continue;
		if (check_load_segment(ph, i, len, gm, err, errlen) != 0)
			return -1;
		for (unsigned int j = 0; j < nloads; j++) {
			if (segments_overlap(ph, loads[j])) {
				snprintf(err, errlen, "ELF: segment %u overlaps an earlier "
					 "segment at 0x%" PRIx64, i, (uint64_t)loads[j]->p_paddr);
				return -1;
			}
		}
		loads[nloads++] = ph;
	}
	if (!have_entry) {
		snprintf(err, errlen, "ELF: no PVH entry note (Xen PHYS32_ENTRY): "
			 "not a PVH-bootable kernel");
		return -1;
	}
	if (nloads == 0) {
		snprintf(err, errlen, "ELF: no loadable segments");
		return -1;
	}
	int entry_inside = 0;
	for (unsigned int j = 0; j < nloads; j++) {
		const Elf64_Phdr *ph = loads[j];
		uint8_t *dst = guest_mem_ptr(gm, ph->p_paddr, ph->p_memsz);
		memcpy(dst, img + ph->p_offset, ph->p_filesz);
		memset(dst + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
		if (entry >= ph->p_paddr && entry - ph->p_paddr < ph->p_filesz)
			entry_inside = 1;
		if (ph->p_paddr + ph->p_memsz > end)
			end = ph->p_paddr + ph->p_memsz;
	}
	if (!entry_inside) {
		snprintf(err, errlen, "ELF: PVH entry 0x%" PRIx64
			 " is not inside a loaded segment", entry);
		return -1;
	}
	memset(bi, 0, sizeof(*bi));
	bi->proto = BOOT_PROTO_PVH;
	bi->entry = entry;
	bi->kernel_end = end;
	bi->cmdline_max = BOOT_CMDLINE_MAX - 1;
	bi->initrd_max = 0xffffffffU;
	return 0;
}
