/*
 * Process-independent snapshots of a libopus decoder state.
 *
 * An OpusDecoder is one flat allocation, but it is not plain data: it holds pointers
 * into libopus's static tables, whose addresses change from one process to the next
 * (ASLR/PIE). Restoring a raw byte copy in another process crashes. This file knows
 * exactly which fields are pointers, from libopus's own headers, and swaps each for a
 * small table number on export and back to this process's address on import:
 *
 *   - the CELT decoder's first field, `const OpusCustomMode *mode` (celt/celt_decoder.c):
 *     always the static 48 kHz mode;
 *   - per SILK channel state (silk/structs.h, silk_decoder_state):
 *     pitch_lag_low_bits_iCDF, pitch_contour_iCDF, psNLSF_CB, set by
 *     silk/decoder_set_fs.c to one of a few static tables, or NULL before SILK ran.
 *
 * The OpusDecoder layout starts with `int celt_dec_offset; int silk_dec_offset;`
 * (src/opus_decoder.c), and the SILK decoder starts with
 * `silk_decoder_state channel_state[DECODER_NUM_CHANNELS]` (silk/dec_API.c).
 *
 * A multistream decoder (OpusMSDecoder, src/opus_private.h) is a ChannelLayout followed
 * by one OpusDecoder per stream (stereo for the first nb_coupled_streams, mono after),
 * each at an aligned offset (src/opus_multistream_decoder.c). The layout itself is
 * plain data; each sub-decoder is relocated exactly like a single decoder. libopus
 * itself says where each sub-decoder is (OPUS_MULTISTREAM_GET_DECODER_STATE).
 * Anything unexpected (an unknown pointer value on export, an unknown table number
 * on import) is refused: never guessed.
 */
#include <string.h>
#include <stdint.h>
#include "opus.h"
#include "opus_multistream.h"
#include "opus_private.h"
#include "silk/structs.h"
#include "silk/tables.h"
#include "celt/modes.h"
#include "celt/cpu_support.h"
#include "silk/API.h"
#include "celt/celt.h"
#include "celt/celt_lpc.h"

#define ZW_OK 0
#define ZW_BAD_LAYOUT -1
#define ZW_BAD_TAG -2
#define ZW_BAD_SIZE -3

/* Table numbers stored in place of pointers. 0 is always NULL. */
static const void *lag_tables(int i) {
    switch (i) {
    case 1: return silk_uniform4_iCDF;
    case 2: return silk_uniform6_iCDF;
    case 3: return silk_uniform8_iCDF;
    default: return 0;
    }
}
static const void *contour_tables(int i) {
    switch (i) {
    case 1: return silk_pitch_contour_iCDF;
    case 2: return silk_pitch_contour_NB_iCDF;
    case 3: return silk_pitch_contour_10_ms_iCDF;
    case 4: return silk_pitch_contour_10_ms_NB_iCDF;
    default: return 0;
    }
}
static const void *nlsf_tables(int i) {
    switch (i) {
    case 1: return &silk_NLSF_CB_NB_MB;
    case 2: return &silk_NLSF_CB_WB;
    default: return 0;
    }
}
#define ZW_MAX_TAG 4

typedef const void *(*table_fn)(int);

/* Pointer -> table number, or -1 when the pointer is none of the known tables. */
static intptr_t tag_of(const void *p, table_fn tables) {
    int i;
    if (p == 0) return 0;
    for (i = 1; i <= ZW_MAX_TAG; i++)
        if (tables(i) == p) return i;
    return -1;
}

static const OpusCustomMode *static_mode(void) {
    return opus_custom_mode_create(48000, 960, NULL);
}

static int offsets(const unsigned char *st, int size, int *celt, int *silk) {
    memcpy(celt, st, sizeof(int));
    memcpy(silk, st + sizeof(int), sizeof(int));
    if (*celt <= 0 || *silk <= 0) return ZW_BAD_LAYOUT;
    if ((size_t)*celt + sizeof(void *) > (size_t)size) return ZW_BAD_LAYOUT;
    if ((size_t)*silk + DECODER_NUM_CHANNELS * sizeof(silk_decoder_state) > (size_t)size)
        return ZW_BAD_LAYOUT;
    return ZW_OK;
}

/* Field addresses inside a byte image of the state (unaligned access via memcpy). */
#define FIELD(base, silk, ch, name) \
    ((base) + (silk) + (ch) * sizeof(silk_decoder_state) + offsetof(silk_decoder_state, name))

static int swap_field(unsigned char *at, table_fn tables, int exporting) {
    const void *p;
    intptr_t tag;
    if (exporting) {
        memcpy(&p, at, sizeof p);
        tag = tag_of(p, tables);
        if (tag < 0) return ZW_BAD_LAYOUT;
        memcpy(at, &tag, sizeof tag);
    } else {
        memcpy(&tag, at, sizeof tag);
        if (tag < 0 || tag > ZW_MAX_TAG) return ZW_BAD_TAG;
        p = tables((int)tag);
        if (tag != 0 && p == 0) return ZW_BAD_TAG;
        memcpy(at, &p, sizeof p);
    }
    return ZW_OK;
}

static int relocate(unsigned char *img, int size, int exporting) {
    int celt, silk, ch, rc;
    const void *mode;
    intptr_t mode_tag;
    if ((rc = offsets(img, size, &celt, &silk)) != ZW_OK) return rc;
    if (exporting) {
        memcpy(&mode, img + celt, sizeof mode);
        if (mode != (const void *)static_mode()) return ZW_BAD_LAYOUT;
        mode_tag = 1;
        memcpy(img + celt, &mode_tag, sizeof mode_tag);
    } else {
        memcpy(&mode_tag, img + celt, sizeof mode_tag);
        if (mode_tag != 1) return ZW_BAD_TAG;
        mode = static_mode();
        memcpy(img + celt, &mode, sizeof mode);
    }
    for (ch = 0; ch < DECODER_NUM_CHANNELS; ch++) {
        if ((rc = swap_field(FIELD(img, silk, ch, pitch_lag_low_bits_iCDF), lag_tables, exporting)) != ZW_OK) return rc;
        if ((rc = swap_field(FIELD(img, silk, ch, pitch_contour_iCDF), contour_tables, exporting)) != ZW_OK) return rc;
        if ((rc = swap_field(FIELD(img, silk, ch, psNLSF_CB), nlsf_tables, exporting)) != ZW_OK) return rc;
    }
    return ZW_OK;
}

/* Copies the live decoder `st` (of `size` bytes) into `out` in portable form. */
int zw_opus_state_export(const OpusDecoder *st, int size, unsigned char *out) {
    if (size != opus_decoder_get_size(((const int *)st)[2])) return ZW_BAD_SIZE;
    memcpy(out, st, (size_t)size);
    return relocate(out, size, 1);
}

/* Rebuilds a live decoder in `st` from a portable image `in` of `size` bytes.
 * `st` must be an initialised decoder with the same channel count: its layout
 * words are compared with the image before anything is copied. */
int zw_opus_state_import(OpusDecoder *st, int size, const unsigned char *in, unsigned char *scratch) {
    int rc;
    if (size != opus_decoder_get_size(((const int *)st)[2])) return ZW_BAD_SIZE;
    /* celt/silk offsets, channels and Fs must equal those of a decoder made here */
    if (memcmp(in, st, 4 * sizeof(int)) != 0) return ZW_BAD_LAYOUT;
    memcpy(scratch, in, (size_t)size);
    if ((rc = relocate(scratch, size, 0)) != ZW_OK) return rc;
    memcpy(st, scratch, (size_t)size);
    return ZW_OK;
}

/* Offset of multistream sub-decoder `s` inside `st`, and its size, as libopus
 * lays it out; ZW_BAD_LAYOUT when it would not lie inside the `size` bytes. */
static int ms_sub(OpusMSDecoder *st, int size, int s, size_t *off, int *sub_size) {
    OpusDecoder *sub = 0;
    if (opus_multistream_decoder_ctl(st, OPUS_MULTISTREAM_GET_DECODER_STATE(s, &sub)) != OPUS_OK || sub == 0)
        return ZW_BAD_LAYOUT;
    *off = (size_t)((unsigned char *)sub - (unsigned char *)st);
    *sub_size = opus_decoder_get_size(s < st->layout.nb_coupled_streams ? 2 : 1);
    if (*off < (size_t)align(sizeof(OpusMSDecoder)) || *off + (size_t)*sub_size > (size_t)size)
        return ZW_BAD_LAYOUT;
    return ZW_OK;
}

static int ms_size(const OpusMSDecoder *st) {
    return opus_multistream_decoder_get_size(st->layout.nb_streams, st->layout.nb_coupled_streams);
}

/* Copies the live multistream decoder `st` (of `size` bytes) into `out` in portable
 * form: every sub-decoder relocated as by zw_opus_state_export. */
int zw_opus_ms_state_export(const OpusMSDecoder *st, int size, unsigned char *out) {
    OpusMSDecoder *live = (OpusMSDecoder *)st; /* the ctl below only reads */
    int s, rc, sub_size;
    size_t off;
    if (size != ms_size(st)) return ZW_BAD_SIZE;
    memcpy(out, st, (size_t)size);
    for (s = 0; s < st->layout.nb_streams; s++) {
        if ((rc = ms_sub(live, size, s, &off, &sub_size)) != ZW_OK) return rc;
        if ((rc = relocate(out + off, sub_size, 1)) != ZW_OK) return rc;
    }
    return ZW_OK;
}

/* Rebuilds the live multistream decoder `st` from a portable image `in` of `size`
 * bytes. `st` must be initialised with the image's layout: channel, stream and coupled
 * counts and mapping table are compared, and each sub-decoder's layout words, before
 * anything is copied. */
int zw_opus_ms_state_import(OpusMSDecoder *st, int size, const unsigned char *in, unsigned char *scratch) {
    const ChannelLayout *mine = &st->layout;
    ChannelLayout theirs;
    int s, rc, sub_size;
    size_t off;
    if (size != ms_size(st)) return ZW_BAD_SIZE;
    memcpy(&theirs, in + offsetof(OpusMSDecoder, layout), sizeof theirs);
    if (theirs.nb_channels != mine->nb_channels || theirs.nb_streams != mine->nb_streams
        || theirs.nb_coupled_streams != mine->nb_coupled_streams
        || memcmp(theirs.mapping, mine->mapping, (size_t)mine->nb_channels) != 0)
        return ZW_BAD_LAYOUT;
    memcpy(scratch, in, (size_t)size);
    for (s = 0; s < mine->nb_streams; s++) {
        if ((rc = ms_sub(st, size, s, &off, &sub_size)) != ZW_OK) return rc;
        if (memcmp(scratch + off, (unsigned char *)st + off, 4 * sizeof(int)) != 0) return ZW_BAD_LAYOUT;
        if ((rc = relocate(scratch + off, sub_size, 0)) != ZW_OK) return rc;
    }
    memcpy(st, scratch, (size_t)size);
    return ZW_OK;
}

/* The run-time CPU dispatch level libopus chose on this machine; part of a
 * checkpoint's fingerprint because it is stored inside the state. */
int zw_opus_arch(void) {
    return opus_select_arch();
}

/* sizeof(silk_decoder_state) as this file sees it, for the fingerprint. */
int zw_opus_silk_state_size(void) {
    return (int)sizeof(silk_decoder_state);
}

/* The SILK decoder struct (silk/dec_API.c) as this file sees it; its size must equal
 * the one the library was compiled with, or the field offsets above are wrong. */
typedef struct {
    silk_decoder_state channel_state[DECODER_NUM_CHANNELS];
    stereo_dec_state sStereo;
    opus_int nChannelsAPI;
    opus_int nChannelsInternal;
    opus_int prev_decode_only_middle;
} zw_silk_decoder;

/* 1 when the headers this file was compiled with describe the linked library: the SILK
 * decoder's size, and the multistream decoder's header (ChannelLayout) before its
 * sub-decoders. */
int zw_opus_layout_ok(void) {
    opus_int size = 0;
    int ms_expected = align(sizeof(OpusMSDecoder)) + align(opus_decoder_get_size(2))
        + align(opus_decoder_get_size(1));
    if (silk_Get_Decoder_Size(&size) != 0) return 0;
    return size == (opus_int)sizeof(zw_silk_decoder)
        && opus_multistream_decoder_get_size(2, 1) == ms_expected;
}

/* CELT's history buffer length in samples per channel (celt/celt_decoder.c). */
#define ZW_DECODE_BUFFER_SIZE 2048

/* Byte ranges of the signal history inside the portable image of one decoder at
 * `img` (`size` bytes): the CELT decoder's decode_mem and each SILK channel's exc_Q14
 * and outBuf. They are the bulk of a state and what its next packets overwrite, so a
 * checkpoint can store a state with them zeroed (see docs/FORMAT.md, "seeded
 * checkpoints"); nothing depends on these ranges being exact. Writes (offset, length)
 * pairs into `pairs` (room for ZW_HISTORY_PAIRS) and returns how many, or
 * ZW_BAD_LAYOUT. */
#define ZW_HISTORY_PAIRS (1 + 2 * DECODER_NUM_CHANNELS)
static int history(const unsigned char *img, int size, int *pairs) {
    int celt, silk, ch, channels, celt_size, tail, mem, end, n = 0, rc;
    const OpusCustomMode *mode = static_mode();
    if ((rc = offsets(img, size, &celt, &silk)) != ZW_OK) return rc;
    memcpy(&channels, img + 2 * sizeof(int), sizeof(int));
    if (channels < 1 || channels > 2) return ZW_BAD_LAYOUT;
    celt_size = celt_decoder_get_size(channels);
    tail = channels * LPC_ORDER * (int)sizeof(opus_val16)
        + 4 * 2 * mode->nbEBands * (int)sizeof(opus_val16);
    mem = channels * (ZW_DECODE_BUFFER_SIZE + mode->overlap) * (int)sizeof(celt_sig);
    end = celt + celt_size - tail;
    if (celt + celt_size > size || end - mem < celt + (int)sizeof(void *)) return ZW_BAD_LAYOUT;
    pairs[n++] = end - mem;
    pairs[n++] = mem;
    for (ch = 0; ch < DECODER_NUM_CHANNELS; ch++) {
        int at = silk + ch * (int)sizeof(silk_decoder_state);
        pairs[n++] = at + (int)offsetof(silk_decoder_state, exc_Q14);
        pairs[n++] = (int)sizeof(((silk_decoder_state *)0)->exc_Q14);
        pairs[n++] = at + (int)offsetof(silk_decoder_state, outBuf);
        pairs[n++] = (int)sizeof(((silk_decoder_state *)0)->outBuf);
    }
    return n / 2;
}

/* History ranges of a single decoder's portable image; see history(). */
int zw_opus_state_history(const unsigned char *img, int size, int *pairs) {
    return history(img, size, pairs);
}

/* History ranges of a multistream decoder `st` (live, `size` bytes), as offsets into
 * its image: ZW_HISTORY_PAIRS per stream, `pairs` having room for all of them. */
int zw_opus_ms_state_history(const OpusMSDecoder *st, int size, int *pairs) {
    OpusMSDecoder *live = (OpusMSDecoder *)st; /* the ctl below only reads */
    int s, k, n = 0, got, sub_size, rc;
    size_t off;
    if (size != ms_size(st)) return ZW_BAD_SIZE;
    for (s = 0; s < st->layout.nb_streams; s++) {
        if ((rc = ms_sub(live, size, s, &off, &sub_size)) != ZW_OK) return rc;
        got = history((const unsigned char *)st + off, sub_size, pairs + 2 * n);
        if (got < 0) return got;
        for (k = 0; k < got; k++) pairs[2 * (n + k)] += (int)off;
        n += got;
    }
    return n;
}
