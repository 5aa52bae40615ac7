"""RViz markers for 3D tracks: solid spheres for visible tracks, translucent covariance-sized
spheres for ghosts, id labels and short trails."""
from __future__ import annotations

import colorsys

import numpy as np
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from object_permanence.core.types import Track3D, TrackState

VISIBLE_ALPHA = 0.9
GHOST_ALPHA = 0.3
MIN_DIAMETER_M = 0.15
MAX_GHOST_DIAMETER_M = 3.0


def track_color(track_id: int, alpha: float) -> ColorRGBA:
    """A stable, well-spread colour per id (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((track_id * 0.618034) % 1.0, 0.8, 0.95)
    return ColorRGBA(r=r, g=g, b=b, a=alpha)


def sphere_diameter(track: Track3D) -> np.ndarray:
    """(3,) marker diameters: the object size floor, grown to the 2-sigma extent of the position
    covariance for ghosts (their uncertainty is what RViz should show)."""
    if track.state != TrackState.OCCLUDED:
        return np.full(3, MIN_DIAMETER_M)
    sigma = np.sqrt(np.clip(np.diag(track.covariance), 0.0, None))
    return np.clip(4.0 * sigma, MIN_DIAMETER_M, MAX_GHOST_DIAMETER_M)  # 2σ each side


def marker_id(track_id: int) -> int:
    """Marker.id (int32) of a 64-bit track id: its low 31 bits. Two live tracks would share one only
    if their ids differed by a multiple of 2^31 (ids are allocated in sequence: never in practice)."""
    return int(track_id) & 0x7FFFFFFF


def tracks_to_markers(tracks: list[Track3D], header: Header, ns: str = "tracks3d") -> MarkerArray:
    """DELETEALL, then per track: a sphere, an id label and a trail."""
    # DELETEALL with an empty namespace clears every namespace (RViz clears only ``ns`` otherwise,
    # and ghosts, labels and trails live in namespaces of their own).
    markers = [Marker(header=header, ns="", action=Marker.DELETEALL)]
    for t in tracks:
        if t.state == TrackState.LOST or not np.all(np.isfinite(t.position)):
            continue
        ghost = t.state == TrackState.OCCLUDED
        color = track_color(t.track_id, GHOST_ALPHA if ghost else VISIBLE_ALPHA)
        pos = Point(x=float(t.position[0]), y=float(t.position[1]), z=float(t.position[2]))
        mid = marker_id(t.track_id)
        sphere = Marker(header=header, ns=f"{ns}/ghosts" if ghost else ns, id=mid, type=Marker.SPHERE,
                        action=Marker.ADD, color=color)
        sphere.pose.position = pos
        sphere.pose.orientation.w = 1.0
        sphere.scale.x, sphere.scale.y, sphere.scale.z = (float(v) for v in sphere_diameter(t))
        label = Marker(header=header, ns=f"{ns}/labels", id=mid, type=Marker.TEXT_VIEW_FACING,
                       action=Marker.ADD, color=ColorRGBA(r=1.0, g=1.0, b=1.0, a=0.6 if ghost else 1.0),
                       text=f"{t.track_id} {t.class_name}{' (ghost)' if ghost else ''}")
        label.pose.position = Point(x=pos.x, y=pos.y - 0.15, z=pos.z)
        label.pose.orientation.w = 1.0
        label.scale.z = 0.12
        markers += [sphere, label]
        if len(t.trail) >= 2:
            trail = Marker(header=header, ns=f"{ns}/trails", id=mid, type=Marker.LINE_STRIP,
                           action=Marker.ADD, color=track_color(t.track_id, 0.6),
                           points=[Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in t.trail])
            trail.pose.orientation.w = 1.0
            trail.scale.x = 0.02
            markers.append(trail)
    return MarkerArray(markers=markers)
