/*
 * boundary.c — the boundary parameter of a multipart/form-data Content-Type
 * (RFC 2046 section 5.1.1, RFC 9110 section 8.3.1 for the parameter syntax).
 */
#include "internal.h"

#include "chars.h"

static int boundary_param(const unsigned char *s, size_t len, char *out)
{
    static const char want[] = "multipart/form-data";
    size_t i = sluice__skip_ws(s, 0, len);
    size_t t0 = i, tl = sluice__take_token(s, &i, len);
    if (!tl || i == len || s[i] != '/')
        return SLUICE_ENOT_MULTIPART;
    i++;
    size_t sl = sluice__take_token(s, &i, len);
    if (!sl || !sluice__eq_ci((const char *)s + t0, i - t0, want))
        return SLUICE_ENOT_MULTIPART;
    size_t blen = 0;
    bool found = false;
    for (;;) {
        i = sluice__skip_ws(s, i, len);
        if (i == len)
            break;
        if (s[i] != ';')
            return SLUICE_EBAD_BOUNDARY;
        i = sluice__skip_ws(s, i + 1, len);
        if (i == len)
            break; /* a trailing ';' */
        size_t n0 = i, nl = sluice__take_token(s, &i, len);
        if (!nl || i == len || s[i] != '=')
            return SLUICE_EBAD_BOUNDARY;
        bool is_b = sluice__eq_ci((const char *)s + n0, nl, "boundary");
        if (is_b && found)
            return SLUICE_EBAD_BOUNDARY;
        found |= is_b;
        i++;
        if (i < len && s[i] == '"') {
            for (i++;; i++) {
                if (i == len)
                    return SLUICE_EBAD_BOUNDARY;
                unsigned char c = s[i];
                if (c == '"')
                    break;
                if (c == '\\' && i + 1 < len)
                    c = s[++i];
                else if (c == '\\')
                    return SLUICE_EBAD_BOUNDARY;
                if (is_b) {
                    if (!sluice__is(c, SLUICE__C_BCHAR) || blen == SLUICE_MULTIPART_BOUNDARY_MAX)
                        return SLUICE_EBAD_BOUNDARY;
                    out[blen++] = (char)c;
                } else if (c < 0x20 && c != '\t') {
                    return SLUICE_EBAD_BOUNDARY;
                }
            }
            i++;
        } else {
            size_t v0 = i, vl = sluice__take_token(s, &i, len);
            if (!vl)
                return SLUICE_EBAD_BOUNDARY;
            for (size_t k = 0; is_b && k < vl; k++) {
                if (!sluice__is(s[v0 + k], SLUICE__C_BCHAR) || blen == SLUICE_MULTIPART_BOUNDARY_MAX)
                    return SLUICE_EBAD_BOUNDARY;
                out[blen++] = (char)s[v0 + k];
            }
        }
    }
    if (!found || blen == 0 || out[blen - 1] == ' ')
        return SLUICE_EBAD_BOUNDARY;
    out[blen] = '\0';
    return (int)blen; /* <= 70 */
}

ssize_t sluice_multipart_boundary(const char *content_type, size_t len,
                              char out[SLUICE_MULTIPART_BOUNDARY_MAX + 1])
{
    ssize_t n = boundary_param((const unsigned char *)content_type, len, out);
    if (n < 0)
        out[0] = '\0';
    return n;
}
