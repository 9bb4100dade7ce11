"""A column of JSON number texts to float64 at once, each value exactly Python's float() of its text.

float() costs about half a microsecond a text, which is most of what reading a history point
costs.  Here the texts of a padded 2-D byte array (a row a text, zero bytes after it) are
read a byte column at a time with NumPy: the significant digits as an integer w (at most 19,
so w < 2**64) and the decimal exponent q, the value being w * 10**q.  On x86-64 a long
double has a 64-bit significand: w and 10**|q| (|q| <= 27) are exact in it, so one multiply
or divide rounds w * 10**q correctly to 64 bits, and rounding that to a double gives the
correctly rounded double (what float() returns) unless the long double fell exactly on the
halfway point between two doubles, where the two roundings may disagree.  Those, and any
text out of these bounds (more digits, a larger exponent, NaN, Infinity), are not `exact`:
the caller takes float() of them.  On a machine whose long double is not the 80-bit format
nothing is exact, and every text goes through float().
"""
from __future__ import annotations

import platform

import numpy as np

_MAX_DIGITS = 19       # significant digits: w < 10**19 < 2**64
_MAX_POWER = 27        # 10**27 = 5**27 * 2**27, 5**27 < 2**63: exact in a 64-bit significand
_MAX_EXP_DIGITS = 4    # an exponent of more digits is out of range anyway (float() decides)
_HALF = 1 << 10        # the 11 bits a double drops from a 64-bit significand, at their halfway point


def _powers():
    powers = [np.longdouble(1)]
    for _ in range(_MAX_POWER):
        powers.append(powers[-1] * np.longdouble(10))     # exact: never rounded on the way
    return np.array(powers, np.longdouble)


ENABLED = (platform.machine() in ("x86_64", "AMD64") and np.finfo(np.longdouble).nmant == 63
           and np.dtype(np.longdouble).itemsize == 16)
_POW10 = _powers() if ENABLED else None


def parse(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, exact) of the texts in `grid` (uint8, a row a text of the JSON number grammar,
    zero bytes after it): values[i] is float(text i) where exact[i]; elsewhere it means nothing."""
    n = len(grid)
    values = np.zeros(n, np.float64)
    if not ENABLED or not n or not grid.shape[1]:
        return values, np.zeros(n, bool)
    columns = np.ascontiguousarray(grid.T)           # a row a byte position: each step contiguous
    d = columns - np.uint8(ord("0"))                 # wraps: a digit is d < 10
    digit = d < 10
    starts_w = digit & (d != 0)
    is_e, is_point, minus = (columns | 0x20) == ord("e"), columns == ord("."), columns == ord("-")
    known = (digit | (columns == 0) | is_point | minus | (columns == ord("+")) | is_e).all(axis=0)
    counted = np.empty_like(digit)         # digits of w: the mantissa's from its first non-zero one
    in_fraction = np.empty_like(digit)
    in_exp_digit = np.empty_like(digit)
    in_exponent, after_point, started = (np.zeros(n, bool) for _ in range(3))
    exp_negative = np.zeros(n, bool)
    w = np.zeros(n, np.uint64)
    exponent = np.zeros(n, np.int64)
    ten = np.uint64(10)
    for j in range(len(columns)):          # (an accumulate along this axis is far slower)
        in_exponent |= is_e[j]
        after_point |= is_point[j]
        mantissa = digit[j] & ~in_exponent
        started |= mantissa & starts_w[j]
        np.logical_and(mantissa, started, out=counted[j])
        np.logical_and(mantissa, after_point, out=in_fraction[j])
        w = np.where(counted[j], w * ten + d[j], w)      # wraps past 19 digits: not exact then
        np.logical_and(digit[j], in_exponent, out=in_exp_digit[j])
        if in_exponent.any():
            exp_negative |= in_exponent & minus[j]
            exponent = np.where(in_exp_digit[j], exponent * 10 + d[j], exponent)
    count = np.uint16 if len(columns) < 1 << 16 else np.int64      # (a narrow sum is the quicker)
    significant = counted.sum(axis=0, dtype=count).astype(np.int64)
    fraction = in_fraction.sum(axis=0, dtype=count).astype(np.int64)
    exp_digits = in_exp_digit.sum(axis=0, dtype=count).astype(np.int64)
    negative = minus[0]
    exact = (significant <= _MAX_DIGITS) & (exp_digits <= _MAX_EXP_DIGITS) & known
    q = np.where(exp_negative, -exponent, exponent) - fraction
    exact &= np.abs(q) <= _MAX_POWER
    power = _POW10[np.where(exact, np.abs(q), 0)]
    wide = w.astype(np.longdouble)
    wide = np.where(q < 0, wide / power, wide * power)
    significand = wide.view(np.uint64).reshape(n, -1)[:, 0]    # x86 extended: the low 8 bytes
    exact &= (significand & np.uint64(0x7FF)) != np.uint64(_HALF)
    values = wide.astype(np.float64)
    np.negative(values, out=values, where=negative)
    return values, exact
