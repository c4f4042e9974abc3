/* Area-averaging shrink of 8-bit, 3-channel images with the arithmetic of OpenCV's cv2.resize
 * INTER_AREA (its general, non-integer-factor path), result for result: the same weights (computed
 * in double, stored as float), each output value summed in float in the same order (source
 * columns left to right within a source row, then source rows top to bottom), each product
 * rounded before it is added (no fused multiply-add), rounded half to even and clamped at the end.
 * It is faster because it does less, not other arithmetic: a source row's bytes become floats
 * once (16 at a time) instead of at every use, the three channels of a pixel are one 4-lane SSE2
 * operation instead of three scalar ones, four source rows are summed across together
 * (independent sums the CPU overlaps), and a source row that two output rows share is summed
 * across once instead of twice. tests/crawl/test_area_resize.py compares it with
 * cv2.resize byte for byte; wit_builder/crawl/download/area.py decides when it is used.
 *
 * Three code paths, the same arithmetic (each lane a multiply then an add, in the same order;
 * explicit mul and add intrinsics, never a fused one, and -ffp-contract=off): "sse2" (above),
 * "avx2" and "avx512", compiled for those instruction sets by target attributes and chosen at
 * run time by what the CPU supports. These keep a block's four source rows side by side as bytes,
 * each pixel padded to 4 (16 bytes a source column, in L1), so one source column's tap is one
 * 512-bit or two 256-bit conversions and multiply-adds for the four rows; the vertical pass is 8
 * or 16 lanes wide, once per output row and block, and four output pixels become bytes at once.
 * About twice as fast as the SSE2 path (benchmarks/bench_area.py).
 *
 * resize(src, src_width, src_height, dst, dst_width, dst_height[, path]): src and dst are
 * writable or read-only C-contiguous buffers of height x width x 3 bytes; the GIL is released
 * meanwhile. `path` ("sse2", "avx2", "avx512") forces a code path, one of paths(); without it the
 * fastest this CPU has, or the one the environment variable WIT_AREA_PATH names (read once, at
 * import: a way to run the others, e.g. WIT_AREA_PATH=sse2). paths(): those this CPU runs.
 */
#if defined(__GNUC__) && !defined(__clang__)
/* GCC fuses a multiply and an add of intrinsics into an FMA where the target has one (avx512f
 * implies it) unless told not to; setup.py says so too (-ffp-contract=off). */
#pragma GCC optimize("fp-contract=off")
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__SSE2__) && defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define WIDE_PATHS 1   /* the avx2 and avx512 paths are compiled (used where the CPU has them) */
#define AVX2 __attribute__((target("avx2")))
#define AVX512 __attribute__((target("avx512f,avx2")))
#endif

enum { PATH_SSE2, PATH_AVX2, PATH_AVX512, PATH_COUNT };
#if defined(__SSE2__)
static const char *const PATH_NAMES[PATH_COUNT] = {"sse2", "avx2", "avx512"};
#else
static const char *const PATH_NAMES[PATH_COUNT] = {"scalar", "avx2", "avx512"};
#endif
static int supported[PATH_COUNT];  /* which paths this CPU runs (module init) */
static int default_path;           /* the fastest, or WIT_AREA_PATH's */

typedef struct {
    int source;   /* source column (or row) */
    int target;   /* output column (or row) */
    float weight;
} Tap;

/* The taps of one axis: for each output index, the source indices it covers and their share of
 * the cell, in increasing source order. Returns how many. */
static int area_taps(int source_size, int target_size, double scale, Tap *taps)
{
    int count = 0;
    for (int target = 0; target < target_size; target++) {
        double start = target * scale, end = start + scale;
        double cell = scale < source_size - start ? scale : source_size - start;
        int first = (int)ceil(start), last = (int)floor(end);
        if (last > source_size - 1)
            last = source_size - 1;
        if (first > last)
            first = last;
        if (first - start > 1e-3)
            taps[count++] = (Tap){first - 1, target, (float)((first - start) / cell)};
        for (int source = first; source < last; source++)
            taps[count++] = (Tap){source, target, (float)(1.0 / cell)};
        if (end - last > 1e-3) {
            double part = end - last < 1.0 ? end - last : 1.0;
            part = part < cell ? part : cell;
            taps[count++] = (Tap){last, target, (float)(part / cell)};
        }
    }
    return count;
}

#define BLOCK 4  /* source rows summed across together: independent sums keep the CPU busy */

/* `count` bytes as floats (exactly), and one 0.0 after them: the 4th lane of the last pixel. */
static void to_floats(const unsigned char *bytes, size_t count, float *floats)
{
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i zero = _mm_setzero_si128();
    for (; i + 16 <= count; i += 16) {
        __m128i sixteen = _mm_loadu_si128((const __m128i *)(bytes + i));
        __m128i low = _mm_unpacklo_epi8(sixteen, zero), high = _mm_unpackhi_epi8(sixteen, zero);
        _mm_storeu_ps(floats + i, _mm_cvtepi32_ps(_mm_unpacklo_epi16(low, zero)));
        _mm_storeu_ps(floats + i + 4, _mm_cvtepi32_ps(_mm_unpackhi_epi16(low, zero)));
        _mm_storeu_ps(floats + i + 8, _mm_cvtepi32_ps(_mm_unpacklo_epi16(high, zero)));
        _mm_storeu_ps(floats + i + 12, _mm_cvtepi32_ps(_mm_unpackhi_epi16(high, zero)));
    }
#endif
    for (; i < count; i++)
        floats[i] = (float)bytes[i];
    floats[count] = 0.0f;
}

/* Source rows first .. first + count - 1 (count <= BLOCK) summed across into `rows` (row r at
 * r * 4 * target_width: 4 floats per output pixel, the 4th unused). `pixels` holds room for
 * BLOCK rows of width * 3 + 1 floats. */
static void sum_across(const unsigned char *source, int width, int first, int count,
                       const Tap *taps, int tap_count, int target_width, float *rows,
                       float *pixels)
{
    size_t stride = (size_t)width * 3 + 1;
    for (int r = 0; r < count; r++)
        to_floats(source + (size_t)(first + r) * width * 3, (size_t)width * 3,
                  pixels + r * stride);
    int k = 0;
    for (int target = 0; target < target_width; target++) {
#if defined(__SSE2__)
        __m128 total[BLOCK];
        for (int r = 0; r < BLOCK; r++)
            total[r] = _mm_setzero_ps();
        for (; k < tap_count && taps[k].target == target; k++) {
            const float *pixel = pixels + 3 * taps[k].source;  /* lane 3: the next pixel's */
            __m128 weight = _mm_set1_ps(taps[k].weight);
            for (int r = 0; r < count; r++, pixel += stride)
                total[r] = _mm_add_ps(total[r], _mm_mul_ps(_mm_loadu_ps(pixel), weight));
        }
        for (int r = 0; r < count; r++)
            _mm_storeu_ps(rows + (size_t)r * 4 * target_width + 4 * target, total[r]);
#else
        float total[BLOCK][3] = {{0.0f}};
        for (; k < tap_count && taps[k].target == target; k++) {
            const float *pixel = pixels + 3 * taps[k].source;
            for (int r = 0; r < count; r++, pixel += stride) {
                for (int c = 0; c < 3; c++) {
                    float product = pixel[c] * taps[k].weight;
                    total[r][c] = total[r][c] + product;
                }
            }
        }
        for (int r = 0; r < count; r++) {
            float *row = rows + (size_t)r * 4 * target_width + 4 * target;
            row[0] = total[r][0]; row[1] = total[r][1]; row[2] = total[r][2]; row[3] = 0.0f;
        }
#endif
    }
}

#if !defined(__SSE2__)
static unsigned char to_byte(float value)
{
    long rounded = lrintf(value);  /* the current rounding mode: half to even */
    return (unsigned char)(rounded < 0 ? 0 : rounded > 255 ? 255 : rounded);
}
#endif

#if defined(WIDE_PATHS)
/* The wide paths' layout: source rows first .. first + count - 1 (count <= BLOCK) side by side,
 * pixel p of block row r at bytes[16 * p + 4 * r] (its 3 bytes, then 0): one source column is 16
 * bytes (12 KiB a block for 800 columns, in L1). A missing row (count < BLOCK) repeats row 0:
 * sums nobody reads. Four pixels of the four rows at once: spread to 4 bytes, transposed. */
AVX2 static void block_bytes(const unsigned char *source, int width, int first, int count,
                             unsigned char *bytes)
{
    const __m128i spread = _mm_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
    size_t row_bytes = (size_t)width * 3;
    const unsigned char *row[BLOCK];
    for (int r = 0; r < BLOCK; r++)
        row[r] = source + (size_t)(first + (r < count ? r : 0)) * row_bytes;
    int p = 0;
    for (; 3 * (size_t)p + 16 <= row_bytes; p += 4) {  /* 16-byte loads */
        __m128i a = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(row[0] + 3 * p)), spread);
        __m128i b = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(row[1] + 3 * p)), spread);
        __m128i c = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(row[2] + 3 * p)), spread);
        __m128i d = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(row[3] + 3 * p)), spread);
        __m128i ab01 = _mm_unpacklo_epi32(a, b), cd01 = _mm_unpacklo_epi32(c, d);
        __m128i ab23 = _mm_unpackhi_epi32(a, b), cd23 = _mm_unpackhi_epi32(c, d);
        __m128i *out = (__m128i *)(bytes + 16 * (size_t)p);
        _mm_storeu_si128(out, _mm_unpacklo_epi64(ab01, cd01));
        _mm_storeu_si128(out + 1, _mm_unpackhi_epi64(ab01, cd01));
        _mm_storeu_si128(out + 2, _mm_unpacklo_epi64(ab23, cd23));
        _mm_storeu_si128(out + 3, _mm_unpackhi_epi64(ab23, cd23));
    }
    for (; p < width; p++)
        for (int r = 0; r < BLOCK; r++) {
            unsigned char *out = bytes + 16 * (size_t)p + 4 * r;
            out[0] = row[r][3 * p]; out[1] = row[r][3 * p + 1]; out[2] = row[r][3 * p + 2];
            out[3] = 0;
        }
}

/* The wide paths' column taps: output pixel t sums taps start[t] .. start[t + 1] - 1, each
 * source column offset[k] (in bytes of the block layout) times weight[k]. */
typedef struct {
    int *start;
    int *offset;
    float *weight;
} Columns;

/* Block rows summed across into `rows` (row r at r * 4 * target_width; all BLOCK rows written,
 * those past the block's count unused): rows 0-1 and 2-3 of a pixel in one 256-bit lane each. */
AVX2 static void sum_across_avx2(const unsigned char *pixels, const Columns *columns,
                                 int target_width, float *rows)
{
    size_t lanes = 4 * (size_t)target_width;
    for (int target = 0; target < target_width; target++) {
        __m256 low = _mm256_setzero_ps(), high = _mm256_setzero_ps();
        for (int k = columns->start[target]; k < columns->start[target + 1]; k++) {
            const unsigned char *pixel = pixels + columns->offset[k];
            __m256 weight = _mm256_set1_ps(columns->weight[k]);
            __m256 rows01 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
                _mm_loadl_epi64((const __m128i *)pixel)));
            __m256 rows23 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
                _mm_loadl_epi64((const __m128i *)(pixel + 8))));
            low = _mm256_add_ps(low, _mm256_mul_ps(rows01, weight));
            high = _mm256_add_ps(high, _mm256_mul_ps(rows23, weight));
        }
        float *out = rows + 4 * (size_t)target;
        _mm_storeu_ps(out, _mm256_castps256_ps128(low));
        _mm_storeu_ps(out + lanes, _mm256_extractf128_ps(low, 1));
        _mm_storeu_ps(out + 2 * lanes, _mm256_castps256_ps128(high));
        _mm_storeu_ps(out + 3 * lanes, _mm256_extractf128_ps(high, 1));
    }
}

/* The same, the four rows of a pixel in one 512-bit lane. */
AVX512 static void sum_across_avx512(const unsigned char *pixels, const Columns *columns,
                                     int target_width, float *rows)
{
    size_t lanes = 4 * (size_t)target_width;
    for (int target = 0; target < target_width; target++) {
        __m512 total = _mm512_setzero_ps();
        for (int k = columns->start[target]; k < columns->start[target + 1]; k++) {
            __m512 weight = _mm512_set1_ps(columns->weight[k]);
            __m512 rows = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                _mm_loadu_si128((const __m128i *)(pixels + columns->offset[k]))));
            total = _mm512_add_ps(total, _mm512_mul_ps(rows, weight));
        }
        float *out = rows + 4 * (size_t)target;
        _mm_storeu_ps(out, _mm512_castps512_ps128(total));
        _mm_storeu_ps(out + lanes, _mm512_extractf32x4_ps(total, 1));
        _mm_storeu_ps(out + 2 * lanes, _mm512_extractf32x4_ps(total, 2));
        _mm_storeu_ps(out + 3 * lanes, _mm512_extractf32x4_ps(total, 3));
    }
}

/* The vertical pass of the `n` (1 to BLOCK) source rows `summed` of one output row that a block
 * holds: sums = sums + betas[0] * summed[0] (sums = betas[0] * summed[0] when `first`), then +
 * betas[1] * summed[1] ..., in that order, each sum rounded as in the one-row-at-a-time pass, but
 * read and written once. lanes % 4 == 0. */
AVX2 static void vertical_avx2(float *sums, const float *const *summed, const float *betas,
                               int n, int lanes, int first)
{
    __m256 beta[BLOCK];
    for (int m = 0; m < n; m++)
        beta[m] = _mm256_set1_ps(betas[m]);
    int i = 0;
    for (; i + 8 <= lanes; i += 8) {
        __m256 product = _mm256_mul_ps(beta[0], _mm256_loadu_ps(summed[0] + i));
        __m256 total = first ? product : _mm256_add_ps(_mm256_loadu_ps(sums + i), product);
        for (int m = 1; m < n; m++)
            total = _mm256_add_ps(total, _mm256_mul_ps(beta[m], _mm256_loadu_ps(summed[m] + i)));
        _mm256_storeu_ps(sums + i, total);
    }
    if (i < lanes) {
        __m128 product = _mm_mul_ps(_mm256_castps256_ps128(beta[0]), _mm_loadu_ps(summed[0] + i));
        __m128 total = first ? product : _mm_add_ps(_mm_loadu_ps(sums + i), product);
        for (int m = 1; m < n; m++)
            total = _mm_add_ps(total, _mm_mul_ps(_mm256_castps256_ps128(beta[m]),
                                                 _mm_loadu_ps(summed[m] + i)));
        _mm_storeu_ps(sums + i, total);
    }
}

AVX512 static void vertical_avx512(float *sums, const float *const *summed, const float *betas,
                                   int n, int lanes, int first)
{
    __m512 beta[BLOCK];
    for (int m = 0; m < n; m++)
        beta[m] = _mm512_set1_ps(betas[m]);
    int i = 0;
    for (; i + 16 <= lanes; i += 16) {
        __m512 product = _mm512_mul_ps(beta[0], _mm512_loadu_ps(summed[0] + i));
        __m512 total = first ? product : _mm512_add_ps(_mm512_loadu_ps(sums + i), product);
        for (int m = 1; m < n; m++)
            total = _mm512_add_ps(total, _mm512_mul_ps(beta[m], _mm512_loadu_ps(summed[m] + i)));
        _mm512_storeu_ps(sums + i, total);
    }
    if (i < lanes) {
        const float *rest[BLOCK];
        for (int m = 0; m < n; m++)
            rest[m] = summed[m] + i;
        vertical_avx2(sums + i, rest, betas, n, lanes - i, first);
    }
}

/* An output row's sums (4 floats a pixel) as bytes: rounded half to even (the default MXCSR
 * mode), clamped to 0-255 by the saturating packs; four pixels at a time. */
AVX2 static void to_bytes_wide(const float *sums, int target_width, unsigned char *out)
{
    const __m128i squeeze = _mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14,
                                          -1, -1, -1, -1);
    int x = 0;
    for (; x + 4 <= target_width; x += 4, sums += 16, out += 12) {
        __m128i words01 = _mm_packs_epi32(_mm_cvtps_epi32(_mm_loadu_ps(sums)),
                                          _mm_cvtps_epi32(_mm_loadu_ps(sums + 4)));
        __m128i words23 = _mm_packs_epi32(_mm_cvtps_epi32(_mm_loadu_ps(sums + 8)),
                                          _mm_cvtps_epi32(_mm_loadu_ps(sums + 12)));
        __m128i bytes = _mm_shuffle_epi8(_mm_packus_epi16(words01, words23), squeeze);
        if (3 * x + 16 <= 3 * target_width) {  /* the 4 bytes after: the next pixels' */
            _mm_storeu_si128((__m128i *)out, bytes);
        } else {
            _mm_storel_epi64((__m128i *)out, bytes);
            int32_t last = _mm_cvtsi128_si32(_mm_srli_si128(bytes, 8));
            memcpy(out + 8, &last, 4);
        }
    }
    for (; x < target_width; x++, sums += 4, out += 3) {
        __m128i ints = _mm_cvtps_epi32(_mm_loadu_ps(sums));
        __m128i words = _mm_packs_epi32(ints, ints);
        int32_t bytes = _mm_cvtsi128_si32(_mm_packus_epi16(words, words));
        out[0] = (unsigned char)bytes;
        out[1] = (unsigned char)(bytes >> 8);
        out[2] = (unsigned char)(bytes >> 16);
    }
}
#endif

/* The whole resize by the SSE2 (or portable) path; 0 on success, -1 when memory ran out. */
static int area_resize_sse2(const unsigned char *source, int width, int height,
                            unsigned char *target, int target_width, int target_height)
{
    double scale_x = 1.0 / ((double)target_width / width);
    double scale_y = 1.0 / ((double)target_height / height);
    Tap *columns = malloc(sizeof(Tap) * 2 * (size_t)width);
    Tap *rows = malloc(sizeof(Tap) * 2 * (size_t)height);
    float *across = malloc(sizeof(float) * 4 * BLOCK * (size_t)target_width);
    float *sums = malloc(sizeof(float) * 4 * (size_t)target_width);
    float *pixels = malloc(sizeof(float) * BLOCK * ((size_t)width * 3 + 1));
    if (!columns || !rows || !across || !sums || !pixels) {
        free(columns); free(rows); free(across); free(sums); free(pixels);
        return -1;
    }
    int column_count = area_taps(width, target_width, scale_x, columns);
    int row_count = area_taps(height, target_height, scale_y, rows);
    int lanes = 4 * target_width, block_first = 0, block_count = 0;
    for (int j = 0; j < row_count; j++) {
        int target_row = rows[j].target, source_row = rows[j].source;
        if (source_row >= block_first + block_count) {  /* rows come in order, some twice */
            block_first = source_row;
            block_count = height - source_row < BLOCK ? height - source_row : BLOCK;
            sum_across(source, width, block_first, block_count, columns, column_count,
                       target_width, across, pixels);
        }
        const float *summed = across + (size_t)(source_row - block_first) * lanes;
        float beta = rows[j].weight;
        if (j == 0 || rows[j - 1].target != target_row) {
            for (int i = 0; i < lanes; i++)
                sums[i] = beta * summed[i];
        } else {
            for (int i = 0; i < lanes; i++) {
                float product = beta * summed[i];
                sums[i] = sums[i] + product;
            }
        }
        if (j + 1 == row_count || rows[j + 1].target != target_row) {
            unsigned char *out = target + (size_t)target_row * target_width * 3;
            for (int x = 0; x < target_width; x++) {
#if defined(__SSE2__)
                /* rounded half to even (the default MXCSR mode, as lrintf), clamped to 0-255 */
                __m128i ints = _mm_cvtps_epi32(_mm_loadu_ps(sums + 4 * x));
                __m128i words = _mm_packs_epi32(ints, ints);
                int32_t bytes = _mm_cvtsi128_si32(_mm_packus_epi16(words, words));
                out[3 * x] = (unsigned char)bytes;
                out[3 * x + 1] = (unsigned char)(bytes >> 8);
                out[3 * x + 2] = (unsigned char)(bytes >> 16);
#else
                out[3 * x] = to_byte(sums[4 * x]);
                out[3 * x + 1] = to_byte(sums[4 * x + 1]);
                out[3 * x + 2] = to_byte(sums[4 * x + 2]);
#endif
            }
        }
    }
    free(columns); free(rows); free(across); free(sums); free(pixels);
    return 0;
}

#if defined(WIDE_PATHS)
/* The whole resize by the AVX2 or AVX-512 path (`path`); 0 on success, -1 when memory ran out.
 * The SSE2 path's order: blocks of BLOCK source rows summed across, then each output row's taps
 * in the block summed down. */
__attribute__((noinline))
static int area_resize_wide(const unsigned char *source, int width, int height,
                            unsigned char *target, int target_width, int target_height, int path)
{
    double scale_x = 1.0 / ((double)target_width / width);
    double scale_y = 1.0 / ((double)target_height / height);
    int lanes = 4 * target_width;
    Tap *columns = malloc(sizeof(Tap) * 2 * (size_t)width);
    Tap *rows = malloc(sizeof(Tap) * 2 * (size_t)height);
    float *across = malloc(sizeof(float) * BLOCK * (size_t)lanes);
    float *sums = malloc(sizeof(float) * (size_t)lanes);
    unsigned char *pixels = malloc(4 * BLOCK * (size_t)width);  /* 16 bytes a source column */
    Columns taps = {NULL, NULL, NULL};
    taps.start = malloc(sizeof(int) * ((size_t)target_width + 1));
    taps.offset = malloc(sizeof(int) * 2 * (size_t)width);
    taps.weight = malloc(sizeof(float) * 2 * (size_t)width);
    int failed = !columns || !rows || !across || !sums || !pixels || !taps.start || !taps.offset
                 || !taps.weight;
    if (!failed) {
        int column_count = area_taps(width, target_width, scale_x, columns);
        int row_count = area_taps(height, target_height, scale_y, rows);
        for (int t = 0, k = 0; t <= target_width; t++) {
            taps.start[t] = k;
            for (; k < column_count && columns[k].target == t; k++) {
                taps.offset[k] = 16 * columns[k].source;
                taps.weight[k] = columns[k].weight;
            }
        }
        int block_first = 0, block_count = 0;
        for (int j = 0; j < row_count;) {
            int target_row = rows[j].target, source_row = rows[j].source;
            if (source_row >= block_first + block_count) {  /* rows come in order, some twice */
                block_first = source_row;
                block_count = height - source_row < BLOCK ? height - source_row : BLOCK;
                block_bytes(source, width, block_first, block_count, pixels);
                if (path == PATH_AVX512)
                    sum_across_avx512(pixels, &taps, target_width, across);
                else
                    sum_across_avx2(pixels, &taps, target_width, across);
            }
            /* the output row's taps in this block, in one pass over the sums */
            int first = j == 0 || rows[j - 1].target != target_row, n = 0;
            const float *group[BLOCK];
            float betas[BLOCK];
            for (; j < row_count && rows[j].target == target_row
                   && rows[j].source < block_first + block_count; j++, n++) {
                group[n] = across + (size_t)(rows[j].source - block_first) * lanes;
                betas[n] = rows[j].weight;
            }
            if (path == PATH_AVX512)
                vertical_avx512(sums, group, betas, n, lanes, first);
            else
                vertical_avx2(sums, group, betas, n, lanes, first);
            if (j == row_count || rows[j].target != target_row)
                to_bytes_wide(sums, target_width, target + (size_t)target_row * target_width * 3);
        }
    }
    free(columns); free(rows); free(across); free(sums); free(pixels);
    free(taps.start); free(taps.offset); free(taps.weight);
    return failed ? -1 : 0;
}
#endif

/* The whole resize by code path `path` (one this CPU runs); 0 on success, -1 when memory ran
 * out. */
static int area_resize(const unsigned char *source, int width, int height, unsigned char *target,
                       int target_width, int target_height, int path)
{
#if defined(WIDE_PATHS)
    if (path != PATH_SSE2)
        return area_resize_wide(source, width, height, target, target_width, target_height, path);
#endif
    return area_resize_sse2(source, width, height, target, target_width, target_height);
}

static PyObject *resize(PyObject *self, PyObject *args)
{
    Py_buffer source, target;
    int width, height, target_width, target_height, path = default_path;
    const char *path_name = NULL;
    if (!PyArg_ParseTuple(args, "y*iiw*ii|z", &source, &width, &height, &target, &target_width,
                          &target_height, &path_name))
        return NULL;
    if (path_name != NULL) {
        for (path = 0; path < PATH_COUNT && strcmp(path_name, PATH_NAMES[path]) != 0; path++)
            ;
    }
    PyObject *result = NULL;
    if (path == PATH_COUNT || !supported[path]) {
        PyErr_Format(PyExc_ValueError, "resize: path %s is not one this CPU runs; see paths()",
                     path_name);
    } else if (width < 1 || height < 1 || target_width < 1 || target_height < 1
            || target_width > width || target_height > height) {
        PyErr_SetString(PyExc_ValueError, "resize: sizes must be positive and shrink");
    } else if (source.len != (Py_ssize_t)width * height * 3
               || target.len != (Py_ssize_t)target_width * target_height * 3) {
        PyErr_SetString(PyExc_ValueError, "resize: buffers must hold height x width x 3 bytes");
    } else {
        int failed;
        Py_BEGIN_ALLOW_THREADS
        failed = area_resize(source.buf, width, height, target.buf, target_width, target_height,
                             path);
        Py_END_ALLOW_THREADS
        if (failed)
            PyErr_NoMemory();
        else
            result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&source);
    PyBuffer_Release(&target);
    return result;
}

static PyObject *paths(PyObject *self, PyObject *unused)
{
    PyObject *names = PyList_New(0);
    for (int path = 0; names && path < PATH_COUNT; path++) {
        if (supported[path]) {
            PyObject *name = PyUnicode_FromString(PATH_NAMES[path]);
            if (!name || PyList_Append(names, name) < 0)
                Py_CLEAR(names);
            Py_XDECREF(name);
        }
    }
    if (!names)
        return NULL;
    PyObject *result = PyList_AsTuple(names);
    Py_DECREF(names);
    return result;
}

static PyObject *default_path_name(PyObject *self, PyObject *unused)
{
    return PyUnicode_FromString(PATH_NAMES[default_path]);
}

static PyMethodDef methods[] = {
    {"resize", resize, METH_VARARGS,
     "resize(src, width, height, dst, dst_width, dst_height[, path]): cv2.INTER_AREA's shrink of "
     "a height x width x 3 uint8 image into dst, by code path `path` (one of paths(); default: "
     "default_path())"},
    {"paths", paths, METH_NOARGS, "paths(): the code paths this CPU runs, slowest first"},
    {"default_path", default_path_name, METH_NOARGS,
     "default_path(): the path resize() takes without one: the fastest, or WIT_AREA_PATH's"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_area", NULL, -1, methods};

PyMODINIT_FUNC PyInit__area(void)
{
    supported[PATH_SSE2] = 1;
#if defined(WIDE_PATHS)
    __builtin_cpu_init();
    supported[PATH_AVX2] = __builtin_cpu_supports("avx2");
    supported[PATH_AVX512] = supported[PATH_AVX2] && __builtin_cpu_supports("avx512f");
#endif
    for (int path = 0; path < PATH_COUNT; path++)
        if (supported[path])
            default_path = path;
    const char *forced = getenv("WIT_AREA_PATH");
    if (forced != NULL && *forced != '\0') {
        int path = 0;
        while (path < PATH_COUNT && strcmp(forced, PATH_NAMES[path]) != 0)
            path++;
        if (path == PATH_COUNT || !supported[path]) {
            PyErr_Format(PyExc_ValueError, "_area: WIT_AREA_PATH=%s is not a code path this CPU "
                         "runs (sse2, or avx2 / avx512 where the CPU has them); unset it or pick "
                         "one of those", forced);
            return NULL;
        }
        default_path = path;
    }
    return PyModule_Create(&module);
}
