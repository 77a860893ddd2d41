"""Sentinel-1 IW acquisition geometry: incidence angle from a swath footprint, γ⁰ → σ⁰."""

from __future__ import annotations

import numpy as np
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS

from sarviz.constants import DEFAULT_ANGLE_DEG

# Sentinel-1 IW: the beam spans 29.1°–46.0° incidence (ESA product specification); a GRD
# product's footprint is about 250 km wide (252 km measured on the SSL4EO footprints), which on
# the orbit's geometry is ~30.7°–46.0°: the product starts a little beyond the beam's near edge.
IW_NEAR_DEG, IW_FAR_DEG = 29.1, 46.0
IW_MID_DEG = DEFAULT_ANGLE_DEG  # 37.5°, what the γ⁰ → σ⁰ conversion uses when the swath geometry is unknown
IW_GRD_SWATH_KM = 250.0
IW_GRD_NEAR_DEG = 30.7  # a GRD product's near edge (approximate; only locates the swath's middle)
#: accepted footprint widths; outside them the footprint is not a whole IW swath (a clipped
#: data footprint, another mode) and the angle is not estimated
IW_SWATH_LIMITS_KM = (150.0, 300.0)
S1_ORBIT_ALTITUDE_KM = 693.0  # nominal, at the equator (the spherical-Earth default below)
EARTH_RADIUS_KM = 6371.0
# the orbit (Sentinel-1 mission guide): sun-synchronous, near circular, 175 orbits in the
# 12-day repeat cycle, semi-major axis 7064.94 km, inclination 98.18°
S1_SEMI_MAJOR_KM = 7064.94
S1_INCLINATION_DEG = 98.18
S1_NODAL_PERIOD_S = 12 * 86400.0 / 175
EARTH_ROTATION_RAD_S = 7.2921159e-5
WGS84_A_KM, WGS84_B_KM = 6378.137, 6356.752314245


def _incidence_at_ground_range(
    g_km: np.ndarray | float, altitude_km: float = S1_ORBIT_ALTITUDE_KM, radius_km: float = EARTH_RADIUS_KM
) -> np.ndarray:
    """Incidence angle (deg) at ground distance g from nadir, spherical Earth of ``radius_km``."""
    R = radius_km
    phi = np.asarray(g_km, dtype=np.float64) / R
    look = np.arctan2(R * np.sin(phi), R + altitude_km - R * np.cos(phi))
    return np.degrees(look + phi)


def _ground_range_at_incidence(
    theta_deg: float, altitude_km: float = S1_ORBIT_ALTITUDE_KM, radius_km: float = EARTH_RADIUS_KM
) -> float:
    """Ground distance from nadir (km) at incidence θ: closed form, g = R·(θ − asin(R·sin θ / (R + h)))."""
    t = np.radians(theta_deg)
    R = radius_km
    return float(R * (t - np.arcsin(R * np.sin(t) / (R + altitude_km))))


def earth_radius_km(lat_deg: float) -> float:
    """Geocentric radius of the WGS84 ellipsoid at a latitude (km)."""
    c, s = np.cos(np.radians(lat_deg)), np.sin(np.radians(lat_deg))
    a, b = WGS84_A_KM, WGS84_B_KM
    return float(np.sqrt(((a * a * c) ** 2 + (b * b * s) ** 2) / ((a * c) ** 2 + (b * s) ** 2)))


def ground_track_azimuth(lat_deg: float, orbit_state: str) -> float:
    """Azimuth (deg clockwise from north) of Sentinel-1's ground track at a latitude.

    In inertial space a circular orbit of inclination i crosses latitude φ at azimuth A with
    sin A = cos i / cos φ (northbound when ascending); the Earth turning under it adds a
    westward ω·cos φ to the ground velocity. ≈ −12° ascending / 192° descending at the
    equator, turning towards east–west as φ approaches the orbit's highest latitude (81.8°),
    where choosing the along-track side of a footprint by "closer to north–south" fails.
    """
    phi = np.radians(lat_deg)
    sin_a = np.clip(np.cos(np.radians(S1_INCLINATION_DEG)) / max(np.cos(phi), 1e-9), -1.0, 1.0)
    cos_a = np.sqrt(1.0 - sin_a * sin_a) * (1.0 if orbit_state == "ascending" else -1.0)
    n = 2 * np.pi / S1_NODAL_PERIOD_S
    east = n * sin_a - EARTH_ROTATION_RAD_S * np.cos(phi)
    north = n * cos_a
    return float(np.degrees(np.arctan2(east, north)))


def _along_track_in_grid(lon: float, lat: float, orbit_state: str, crs: CRS, offset_km: float) -> np.ndarray:
    """Unit vector, in ``crs`` map coordinates, of the along-track direction at a point that
    lies ``offset_km`` to the right of the ground track (e.g. the middle of the swath).

    The heading must be taken at the *nadir* point, ~470 km away, not at the point itself:
    above ~75° the two latitudes give very different headings. The nadir N is found by fixed-
    point iteration (C = N moved right by ``offset_km`` at N's track heading); the along-track
    direction at C is then C₋→C₊ for nadir points 20 km before and after N, each moved right.
    """
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    n_lon, n_lat = lon, lat
    for _ in range(8):
        az = ground_track_azimuth(n_lat, orbit_state)
        c_lon, c_lat, _ = geod.fwd(n_lon, n_lat, az + 90.0, offset_km * 1000.0)
        d_lon = (lon - c_lon + 180.0) % 360.0 - 180.0
        n_lon, n_lat = n_lon + d_lon, float(np.clip(n_lat + (lat - c_lat), -89.9, 89.9))
        if abs(d_lon) * np.cos(np.radians(lat)) < 1e-5 and abs(lat - c_lat) < 1e-5:
            break
    az = ground_track_azimuth(n_lat, orbit_state)
    ends = []
    for step_km in (-20.0, 20.0):
        e_lon, e_lat, back = geod.fwd(n_lon, n_lat, az, step_km * 1000.0)
        ends.append(geod.fwd(e_lon, e_lat, ground_track_azimuth(e_lat, orbit_state) + 90.0, offset_km * 1000.0)[:2])
    to_grid = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    (x1, x2), (y1, y2) = to_grid.transform([ends[0][0], ends[1][0]], [ends[0][1], ends[1][1]])
    v = np.array([x2 - x1, y2 - y1], dtype=np.float64)
    return v / max(float(np.hypot(*v)), 1e-12)


def _unwrap_antimeridian(geom):
    """A footprint that crosses ±180° (a ring jumping from 179° to −179°, or a GeoJSON
    MultiPolygon split at the antimeridian) as one shape with longitudes beyond 180°."""
    import shapely
    from shapely.ops import unary_union

    lons = shapely.get_coordinates(geom)[:, 0]
    if lons.size == 0 or lons.max() - lons.min() <= 180.0:
        return geom
    shifted = shapely.transform(
        geom, lambda xy: np.column_stack([np.where(xy[:, 0] < 0, xy[:, 0] + 360.0, xy[:, 0]), xy[:, 1]])
    )
    return unary_union([shifted]) if shifted.geom_type.startswith("Multi") else shifted


def estimate_incidence_angle(
    footprint: dict, orbit_state: str, crs: CRS, transform: Affine, width: int, height: int, details: dict | None = None
) -> np.ndarray | None:
    """Per-pixel incidence angle of an IW GRD acquisition from its swath footprint and pass.

    1. The along-track side of the footprint (its minimum rotated rectangle) is the side most
       parallel to Sentinel-1's ground track (:func:`ground_track_azimuth`, taken at the nadir
       point of the footprint's middle) — right at any latitude, unlike "the side closer to
       north–south", which fails above ~75°.
    2. Sentinel-1 looks right: far range is on the right of the heading.
    3. The far edge is at 46.0° (the IW far edge); the measured footprint width W (~250 km)
       sets the near edge, and ground range maps to incidence through the orbit's geometry
       (spherical Earth of the local WGS84 radius R, satellite at 7064.94 km − R), so the
       near edge comes out at ~30.7° as in real GRD products rather than the beam's 29.1°.

    Accurate to a few tenths of a degree on flat ground (the ellipsoid angle; no DEM). Returns
    None for an unknown pass or a footprint that is not a whole swath. ``details`` (a dict)
    receives the width, the edge angles and the heading used.
    """
    from shapely.geometry import shape
    from shapely.ops import transform as shp_transform

    if orbit_state not in ("ascending", "descending"):
        return None
    try:
        geom = _unwrap_antimeridian(shape(footprint))
        centre = geom.centroid
        lon0, lat0 = float(centre.x), float(centre.y)
        to_grid = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        poly = shp_transform(to_grid.transform, geom)
        rect = poly.minimum_rotated_rectangle
        corners = np.asarray(rect.exterior.coords)[:4]
    except Exception:
        return None
    radius = earth_radius_km(lat0)
    altitude = S1_SEMI_MAJOR_KM - radius
    swath_middle_km = (
        _ground_range_at_incidence(IW_GRD_NEAR_DEG, altitude, radius)
        + _ground_range_at_incidence(IW_FAR_DEG, altitude, radius)
    ) / 2
    heading = _along_track_in_grid(lon0, lat0, orbit_state, crs, swath_middle_km)
    right = np.array([heading[1], -heading[0]])  # the heading turned 90° clockwise
    edges = [corners[(i + 1) % 4] - corners[i] for i in range(2)]
    lengths = [max(float(np.hypot(*e)), 1e-9) for e in edges]
    k = int(np.argmax([abs(float(e @ heading)) / n for e, n in zip(edges, lengths)]))
    along = edges[k] / lengths[k]
    across = np.array([along[1], -along[0]])
    if across @ right < 0:
        across = -across
    proj = corners @ across
    near, far = float(proj.min()), float(proj.max())
    width_km = (far - near) / 1000.0
    if not IW_SWATH_LIMITS_KM[0] <= width_km <= IW_SWATH_LIMITS_KM[1]:
        return None
    g_far = _ground_range_at_incidence(IW_FAR_DEG, altitude, radius)
    g_near = g_far - width_km
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    xs = transform.a * cols + transform.b * rows + transform.c
    ys = transform.d * cols + transform.e * rows + transform.f
    pos_km = np.clip(xs * across[0] + ys * across[1] - near, 0.0, far - near) / 1000.0
    if details is not None:
        details.update(
            {
                "swath_width_km": round(width_km, 2),
                "near_edge_deg": round(float(_incidence_at_ground_range(g_near, altitude, radius)), 3),
                "far_edge_deg": IW_FAR_DEG,
                "along_track_grid_vector": [round(float(v), 4) for v in heading],
                "earth_radius_km": round(radius, 2),
                "altitude_km": round(altitude, 2),
            }
        )
    return _incidence_at_ground_range(g_near + pos_km, altitude, radius).astype(np.float32)


def gamma0_to_sigma0_db(gamma0_linear: np.ndarray, incidence_deg: np.ndarray | float) -> np.ndarray:
    """Terrain-flattened γ⁰ (linear power) → σ⁰ in dB: σ⁰ = γ⁰ · cos θ.

    σ⁰ (ellipsoid, what Earth Engine's S1_GRD, the emulator's training data and HuiYanEarth
    use) and γ⁰ differ by the cosine of the incidence angle: γ⁰ = σ⁰ / cos θ. θ here is the
    ellipsoid incidence angle. RTC products normalise by the local terrain-facet area
    instead, so this is the flat-terrain approximation: exact on flat ground, and on slopes
    it keeps the terrain flattening (the brightness of foreslopes is not restored).
    NaN / non-positive γ⁰ → NaN.
    """
    g = np.asarray(gamma0_linear, dtype=np.float64)
    cos_t = np.cos(np.radians(np.asarray(incidence_deg, dtype=np.float64)))
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma0 = g * cos_t
        return np.where(np.isfinite(sigma0) & (sigma0 > 0), 10.0 * np.log10(sigma0), np.nan).astype(np.float32)
