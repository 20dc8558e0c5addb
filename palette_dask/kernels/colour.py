"""Colour: the spaces pixels are clustered in, and the perceptual error of a palette.

``rgb`` is display sRGB on the 0–255 scale, as the tutorial clusters;
``lab`` is CIELAB (D65 white, the sRGB primaries of IEC 61966-2-1), where a
Euclidean distance approximates a perceived difference (ΔE*ab, 1976). Centres
fitted in Lab are converted back to display sRGB for people and files.

Every conversion of a pixel goes through one compiled function,
:func:`lab_of`, whether it runs on a sample (numpy, :func:`srgb_to_lab`) or
inside the counting loop, so a colour converts to the same Lab value in both.
It looks up linear light (for whole 0–255 values) and cube roots in tables:
about 10 ns a pixel.

Examples
--------
>>> (srgb_to_lab(np.array([[255.0, 255.0, 255.0], [255.0, 0.0, 0.0]])).round(1) + 0.0).tolist()
[[100.0, 0.0, 0.0], [53.2, 80.1, 67.2]]
>>> lab_to_srgb(srgb_to_lab(np.array([[12.0, 200.0, 99.0]]))).round(2).tolist()
[[12.0, 200.0, 99.0]]
"""

from __future__ import annotations

import numba
import numpy as np

from ..constants import SPACES

__all__ = [
    "SPACES",
    "srgb_to_lab",
    "lab_to_srgb",
    "lab_of",
    "srgb_of",
    "palette_lab",
    "hex_rgb",
    "hex_code",
    "ciede2000",
    "delta_e00",
    "is_excluded",
    "excluded",
]

# sRGB (linear) to CIE XYZ, D65, and the D65 white point (IEC 61966-2-1).
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_WHITE = np.array([0.95047, 1.0, 1.08883])
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_EPSILON = 216.0 / 24389.0  # CIE's exact constants
_KAPPA = 24389.0 / 27.0


@numba.njit(nogil=True, cache=True, inline="always")
def _linear_light(v):
    """Linear light (0–1) of one sRGB value (0–255), by the formula of IEC 61966-2-1."""
    c = v / 255.0
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


# Lookup tables, frozen into the compiled code as constants: passing arrays to
# a numba function called per pixel costs reference counting on every call
# (six times slower, measured). Linear light of the 256 whole values; and
# CIE's f(t) = t^(1/3) as cube roots on [0, 1.1], linearly interpolated
# (error < 4e-7, under 1e-4 ΔE), ten times quicker than cbrt. Beyond 1.1 (out
# of gamut) the cube root is computed.
_LINEAR = np.array([_linear_light(float(v)) for v in range(256)])
_CBRT_STEPS, _CBRT_TOP = 16384, 1.1
_CBRT = np.cbrt(np.linspace(0.0, _CBRT_TOP, _CBRT_STEPS + 1))


@numba.njit(nogil=True, cache=True, inline="always")
def _linear_of(v):
    if v == np.floor(v) and 0.0 <= v <= 255.0:  # every 8-bit image
        return _LINEAR[int(v)]
    return _linear_light(v)


@numba.njit(nogil=True, cache=True, inline="always")
def _f(t):
    if t <= _EPSILON:
        return (_KAPPA * t + 16.0) / 116.0
    position = t * (_CBRT_STEPS / _CBRT_TOP)
    i = int(position)
    if i >= _CBRT_STEPS:
        return np.cbrt(t)
    return _CBRT[i] + (_CBRT[i + 1] - _CBRT[i]) * (position - i)


@numba.njit(nogil=True, cache=True, inline="always")
def lab_of(r, g, b):
    """The CIELAB ``(L, a, b)`` of one sRGB colour given as three 0–255 floats (about 10 ns)."""
    lr, lg, lb = _linear_of(r), _linear_of(g), _linear_of(b)
    m, white = _RGB_TO_XYZ, _WHITE
    fx = _f((m[0, 0] * lr + m[0, 1] * lg + m[0, 2] * lb) / white[0])
    fy = _f((m[1, 0] * lr + m[1, 1] * lg + m[1, 2] * lb) / white[1])
    fz = _f((m[2, 0] * lr + m[2, 1] * lg + m[2, 2] * lb) / white[2])
    return 116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)


@numba.njit(nogil=True, cache=True)
def _srgb_to_lab(rgb):
    out = np.empty(rgb.shape, dtype=np.float64)
    for i in range(rgb.shape[0]):
        out[i, 0], out[i, 1], out[i, 2] = lab_of(rgb[i, 0], rgb[i, 1], rgb[i, 2])
    return out


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (float64) of ``(n, 3)`` sRGB colours on the 0–255 scale."""
    rgb = np.asarray(rgb)
    flat = np.ascontiguousarray(rgb.reshape(-1, 3), dtype=np.float64)
    return _srgb_to_lab(flat).reshape(rgb.shape)


@numba.njit(nogil=True, cache=True, inline="always")
def srgb_of(lightness, green_red, blue_yellow):
    """Display sRGB ``(r, g, b)``, 0–255 floats clipped to the gamut, of one CIELAB colour."""
    fy = (lightness + 16.0) / 116.0
    fx, fz = fy + green_red / 500.0, fy - blue_yellow / 200.0
    x = (fx**3 if fx**3 > _EPSILON else (116.0 * fx - 16.0) / _KAPPA) * _WHITE[0]
    y = (fy**3 if fy**3 > _EPSILON else (116.0 * fy - 16.0) / _KAPPA) * _WHITE[1]
    z = (fz**3 if fz**3 > _EPSILON else (116.0 * fz - 16.0) / _KAPPA) * _WHITE[2]
    m = _XYZ_TO_RGB
    out = np.empty(3)
    for channel in range(3):
        linear = min(max(m[channel, 0] * x + m[channel, 1] * y + m[channel, 2] * z, 0.0), 1.0)
        value = 12.92 * linear if linear <= 0.0031308 else 1.055 * linear ** (1 / 2.4) - 0.055
        out[channel] = min(max(value * 255.0, 0.0), 255.0)
    return out[0], out[1], out[2]


@numba.njit(nogil=True, cache=True)
def _lab_to_srgb(lab):
    out = np.empty(lab.shape, dtype=np.float64)
    for i in range(lab.shape[0]):
        out[i, 0], out[i, 1], out[i, 2] = srgb_of(lab[i, 0], lab[i, 1], lab[i, 2])
    return out


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """Display sRGB (float64, 0–255, clipped to the gamut) of ``(n, 3)`` CIELAB colours."""
    lab = np.asarray(lab, dtype=np.float64)
    flat = np.ascontiguousarray(lab.reshape(-1, 3))
    return _lab_to_srgb(flat).reshape(lab.shape)


def palette_lab(colors: np.ndarray) -> np.ndarray:
    """CIELAB of a palette as shown and saved: each colour rounded to 8-bit sRGB first."""
    return srgb_to_lab(np.clip(np.rint(np.asarray(colors, dtype=np.float64)), 0, 255))


def hex_rgb(code: str) -> tuple[int, int, int]:
    """``#rrggbb`` (or ``rrggbb``) as 8-bit sRGB.

    Examples
    --------
    >>> hex_rgb("#c74c32")
    (199, 76, 50)
    """
    code = code.lstrip("#")
    return tuple(int(code[i : i + 2], 16) for i in (0, 2, 4))


def hex_code(rgb) -> str:
    """8-bit sRGB as ``#rrggbb``: the one formatter of colour codes (the inverse of :func:`hex_rgb`).

    Examples
    --------
    >>> hex_code((199, 76, 50))
    '#c74c32'
    """
    return "#" + "".join(f"{int(v):02x}" for v in rgb)


_POW25_7 = 25.0**7


@numba.njit(nogil=True, cache=True, inline="always")
def ciede2000(l1, a1, b1, l2, a2, b2):
    """The CIEDE2000 colour difference ΔE00 of two CIELAB colours (kL = kC = kH = 1; Sharma et al. 2005)."""
    c1, c2 = np.sqrt(a1 * a1 + b1 * b1), np.sqrt(a2 * a2 + b2 * b2)
    c7 = ((c1 + c2) / 2.0) ** 7
    g = 0.5 * (1.0 - np.sqrt(c7 / (c7 + _POW25_7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p, c2p = np.sqrt(a1p * a1p + b1 * b1), np.sqrt(a2p * a2p + b2 * b2)
    h1p = 0.0 if a1p == 0.0 and b1 == 0.0 else np.degrees(np.arctan2(b1, a1p)) % 360.0
    h2p = 0.0 if a2p == 0.0 and b2 == 0.0 else np.degrees(np.arctan2(b2, a2p)) % 360.0
    dhp = 0.0
    hbar = h1p + h2p
    if c1p * c2p != 0.0:
        dhp = h2p - h1p
        if dhp > 180.0:
            dhp -= 360.0
        elif dhp < -180.0:
            dhp += 360.0
        if abs(h1p - h2p) <= 180.0:
            hbar = (h1p + h2p) / 2.0
        elif h1p + h2p < 360.0:
            hbar = (h1p + h2p + 360.0) / 2.0
        else:
            hbar = (h1p + h2p - 360.0) / 2.0
    d_l, d_c = l2 - l1, c2p - c1p
    d_h = 2.0 * np.sqrt(c1p * c2p) * np.sin(np.radians(dhp / 2.0))
    lbar, cbar = (l1 + l2) / 2.0, (c1p + c2p) / 2.0
    t = (
        1.0
        - 0.17 * np.cos(np.radians(hbar - 30.0))
        + 0.24 * np.cos(np.radians(2.0 * hbar))
        + 0.32 * np.cos(np.radians(3.0 * hbar + 6.0))
        - 0.20 * np.cos(np.radians(4.0 * hbar - 63.0))
    )
    theta = 30.0 * np.exp(-(((hbar - 275.0) / 25.0) ** 2))
    cbar7 = cbar**7
    r_t = -2.0 * np.sqrt(cbar7 / (cbar7 + _POW25_7)) * np.sin(np.radians(2.0 * theta))
    s_l = 1.0 + 0.015 * (lbar - 50.0) ** 2 / np.sqrt(20.0 + (lbar - 50.0) ** 2)
    s_c, s_h = 1.0 + 0.045 * cbar, 1.0 + 0.015 * cbar * t
    x, y, z = d_l / s_l, d_c / s_c, d_h / s_h
    return np.sqrt(max(x * x + y * y + z * z + r_t * y * z, 0.0))


@numba.njit(nogil=True, cache=True)
def _delta_e00(lab, other):
    out = np.empty((lab.shape[0], other.shape[0]), dtype=np.float64)
    for i in range(lab.shape[0]):
        for j in range(other.shape[0]):
            out[i, j] = ciede2000(lab[i, 0], lab[i, 1], lab[i, 2], other[j, 0], other[j, 1], other[j, 2])
    return out


def delta_e00(colors, references) -> np.ndarray:
    """``(n, m)`` CIEDE2000 differences between 8-bit sRGB ``colors`` (n, 3) and ``references`` (m, 3).

    Examples
    --------
    >>> delta_e00([[255, 255, 255], [240, 240, 240]], [[255, 255, 255]]).round(2).tolist()
    [[0.0], [3.05]]
    """
    lab, other = (srgb_to_lab(np.asarray(c, np.float64).reshape(-1, 3)) for c in (colors, references))
    return _delta_e00(lab, other)


@numba.njit(nogil=True, cache=True, inline="always")
def is_excluded(lightness, green_red, blue_yellow, exclude_lab, within):
    """Whether a CIELAB colour is within ΔE00 ``within`` of a row of ``exclude_lab`` (m, 3)."""
    for e in range(exclude_lab.shape[0]):
        difference = ciede2000(
            lightness, green_red, blue_yellow, exclude_lab[e, 0], exclude_lab[e, 1], exclude_lab[e, 2]
        )
        if difference <= within:
            return True
    return False


@numba.njit(nogil=True, cache=True)
def _excluded(rgb, exclude_lab, within):
    out = np.zeros(rgb.shape[0], dtype=np.bool_)
    for i in range(rgb.shape[0]):
        lightness, green_red, blue_yellow = lab_of(
            np.float64(rgb[i, 0]), np.float64(rgb[i, 1]), np.float64(rgb[i, 2])
        )
        out[i] = is_excluded(lightness, green_red, blue_yellow, exclude_lab, within)
    return out


def excluded(rgb: np.ndarray, exclude_lab: np.ndarray, within: float) -> np.ndarray:
    """Which of ``(n, 3)`` display sRGB colours (0–255) are within ΔE00 ``within`` of ``exclude_lab``.

    Examples
    --------
    >>> white = srgb_to_lab(np.array([[255.0, 255.0, 255.0]]))
    >>> excluded(np.array([[250, 250, 250], [200, 200, 200]], np.float32), white, 6.0).tolist()
    [True, False]
    """
    rgb = np.asarray(rgb)
    flat = rgb.reshape(-1, 3)
    return _excluded(flat, np.asarray(exclude_lab, dtype=np.float64).reshape(-1, 3), float(within)).reshape(
        rgb.shape[:-1]
    )
