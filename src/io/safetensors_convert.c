/* Element conversions and the converting readers plstm_safetensors_read_*.
 * Loads go through memcpy, so any alignment of the file's offsets is safe. */
#include "plstm/safetensors.h"
#include "core/status_internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader assumes a little-endian host"
#endif

static float bits_to_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

float plstm_bf16_to_f32(uint16_t bits) { return bits_to_f32((uint32_t)bits << 16); }

float plstm_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0) { /* zero or subnormal: mant * 2^-24, exact in float */
        float v = ldexpf((float)mant, -24);
        return sign ? -v : v;
    }
    if (exp == 31) /* inf or NaN (payload kept) */
        return bits_to_f32(sign | 0x7f800000u | (mant << 13));
    return bits_to_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t plstm_f32_to_bf16(float x)
{
    uint32_t u = f32_to_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it a (quiet) NaN */
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

uint16_t plstm_f32_to_f16(float x)
{
    uint32_t u = f32_to_bits(x);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN */
        return sign | 0x7e00u | (uint16_t)((a >> 13) & 0x3ffu);
    if (a >= 0x477ff000u) /* >= 65520 rounds to inf */
        return sign | 0x7c00u;
    if (a < 0x38800000u) { /* below 2^-14: subnormal; scaling by 2^24 is exact */
        float r = rintf(bits_to_f32(a) * 16777216.0f);
        return sign | (uint16_t)r; /* 1024 encodes the smallest normal, as it should */
    }
    uint32_t h = ((((a >> 23) - 112u) << 10) | ((a >> 13) & 0x3ffu));
    uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++; /* a carry into the exponent is correct, up to inf */
    return sign | (uint16_t)h;
}

/* Finds the tensor and checks the caller's element count. */
static plstm_status lookup(const plstm_safetensors *st, const char *name, size_t count,
                           const void *dst, const plstm_safetensors_tensor **t)
{
    PLSTM_CHECK_ARG(st != NULL && name != NULL && (dst != NULL || count == 0),
                    "safetensors read: NULL argument");
    PLSTM_TRY(plstm_safetensors_get(st, name, t));
    if ((uint64_t)(*t)->numel != (uint64_t)count)
        return plstm_fail(PLSTM_ERR_FORMAT, "tensor '%.200s' has %lld elements, expected %zu",
                          name, (long long)(*t)->numel, count);
    return PLSTM_OK;
}

static plstm_status wrong_dtype(const plstm_safetensors_tensor *t, const char *want)
{
    return plstm_fail(PLSTM_ERR_FORMAT, "tensor '%.200s' has dtype %s, expected %s", t->name,
                      plstm_dtype_name(t->dtype), want);
}

/* One loop per source dtype, dtype checked before touching dst. */
#define DEFINE_READ_FLOAT(FN, REAL)                                                      \
    plstm_status FN(const plstm_safetensors *st, const char *name, REAL *dst, size_t count) \
    {                                                                                    \
        const plstm_safetensors_tensor *t;                                               \
        PLSTM_TRY(lookup(st, name, count, dst, &t));                                     \
        const unsigned char *p = t->data;                                                \
        switch (t->dtype) {                                                              \
        case PLSTM_F32:                                                                  \
            for (size_t i = 0; i < count; ++i) {                                         \
                float v;                                                                 \
                memcpy(&v, p + 4 * i, 4);                                                \
                dst[i] = (REAL)v;                                                        \
            }                                                                            \
            return PLSTM_OK;                                                             \
        case PLSTM_F64:                                                                  \
            for (size_t i = 0; i < count; ++i) {                                         \
                double v;                                                                \
                memcpy(&v, p + 8 * i, 8);                                                \
                dst[i] = (REAL)v;                                                        \
            }                                                                            \
            return PLSTM_OK;                                                             \
        case PLSTM_BF16:                                                                 \
        case PLSTM_F16:                                                                  \
            for (size_t i = 0; i < count; ++i) {                                         \
                uint16_t v;                                                              \
                memcpy(&v, p + 2 * i, 2);                                                \
                dst[i] = (REAL)(t->dtype == PLSTM_BF16 ? plstm_bf16_to_f32(v)            \
                                                      : plstm_f16_to_f32(v));            \
            }                                                                            \
            return PLSTM_OK;                                                             \
        default:                                                                         \
            return wrong_dtype(t, "a float dtype (F32, F64, BF16, F16)");                \
        }                                                                                \
    }

DEFINE_READ_FLOAT(plstm_safetensors_read_f32, float)
DEFINE_READ_FLOAT(plstm_safetensors_read_f64, double)

plstm_status plstm_safetensors_read_i64(const plstm_safetensors *st, const char *name,
                                        int64_t *dst, size_t count)
{
    const plstm_safetensors_tensor *t;
    PLSTM_TRY(lookup(st, name, count, dst, &t));
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case PLSTM_I64:
        if (count)
            memcpy(dst, p, count * 8);
        return PLSTM_OK;
    case PLSTM_I32:
        for (size_t i = 0; i < count; ++i) {
            int32_t v;
            memcpy(&v, p + 4 * i, 4);
            dst[i] = v;
        }
        return PLSTM_OK;
    case PLSTM_U8:
        for (size_t i = 0; i < count; ++i)
            dst[i] = p[i];
        return PLSTM_OK;
    default:
        return wrong_dtype(t, "an integer dtype (I64, I32, U8)");
    }
}
