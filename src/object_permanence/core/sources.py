"""Stereo frame sources for the capture node: video files, image folders and two live cameras.

Every source yields synchronised ``(left, right)`` BGR uint8 frames of one size, ``(H, W, 3)``,
through :meth:`StereoSource.read`, which returns None at the end of the stream. Grayscale input is
converted to BGR once, when the frame is read. Sources are context managers and iterables.
"""
from __future__ import annotations

import glob
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from os import PathLike
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

_PathArg = str | PathLike[str]
Frame = np.ndarray  # (H, W, 3) uint8 BGR


@runtime_checkable
class StereoSource(Protocol):
    """What the capture node reads from.

    frame_size: ``(width, height)`` in pixels of each of the two frames.
    """

    @property
    def frame_size(self) -> tuple[int, int]: ...

    def read(self) -> tuple[Frame, Frame] | None:
        """The next synchronised ``(left, right)`` pair, or None at the end of the stream."""

    def close(self) -> None:
        """Release files or devices; reading afterwards returns None."""


def _to_bgr(image: np.ndarray) -> Frame:
    """uint8 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) -> (H, W, 3) BGR."""
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


class _SourceBase(ABC):
    """Context-manager and iterator plumbing shared by the sources."""

    @abstractmethod
    def read(self) -> tuple[Frame, Frame] | None:
        """The next ``(left, right)`` pair, or None at the end."""

    @abstractmethod
    def close(self) -> None:
        """Release what the source holds."""

    def __enter__(self) -> _SourceBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[tuple[Frame, Frame]]:
        while (pair := self.read()) is not None:
            yield pair


def _open_video(path: _PathArg) -> cv2.VideoCapture:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"cannot open video (unsupported or corrupt): {path}")
    return capture


def _capture_size(capture: cv2.VideoCapture) -> tuple[int, int]:
    return int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))


class VideoPairSource(_SourceBase):
    """Frames from two synchronised video files, or from one side-by-side file split into halves.

    left_path: the left video, or the side-by-side video (left half | right half) when ``side_by_side``.
    right_path: the right video; must be None when ``side_by_side``.
    loop: rewind to the first frame at the end instead of ending. Two files end with the shorter one.
    A side-by-side frame of width W gives two halves of width ``W // 2`` (an odd last column is dropped).

    Raises:
        FileNotFoundError: for a missing file. ValueError: naming the path for an unreadable video,
            for mismatched frame sizes or inconsistent arguments.
    """

    def __init__(self, left_path: _PathArg, right_path: _PathArg | None = None,
                 side_by_side: bool = False, loop: bool = False) -> None:
        if side_by_side == (right_path is not None):
            raise ValueError(
                f"give right_path ({right_path!r}) for two files, or side_by_side=True for one file, not both"
            )
        self.loop = loop
        self.side_by_side = side_by_side
        self._paths = [Path(left_path)] + ([] if right_path is None else [Path(right_path)])
        self._captures = [_open_video(p) for p in self._paths]
        sizes = [_capture_size(c) for c in self._captures]
        if side_by_side:
            width, height = sizes[0]
            self._size = (width // 2, height)
        else:
            if sizes[0] != sizes[1]:
                self.close()
                raise ValueError(f"frame sizes differ: {left_path} is {sizes[0]}, {right_path} is {sizes[1]}")
            self._size = sizes[0]

    @property
    def frame_size(self) -> tuple[int, int]:
        return self._size

    def _read_all(self) -> list[np.ndarray] | None:
        frames = []
        for capture in self._captures:
            ok, frame = capture.read()
            if not ok:
                return None
            frames.append(frame)
        return frames

    def read(self) -> tuple[Frame, Frame] | None:
        if not self._captures:
            return None
        frames = self._read_all()
        if frames is None and self.loop:
            for capture in self._captures:
                capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            frames = self._read_all()
        if frames is None:
            return None
        frames = [_to_bgr(f) for f in frames]
        if self.side_by_side:
            half = self._size[0]
            left, right = frames[0][:, :half], frames[0][:, half:2 * half]
            return np.ascontiguousarray(left), np.ascontiguousarray(right)
        return frames[0], frames[1]

    def close(self) -> None:
        for capture in self._captures:
            capture.release()
        self._captures = []


def _natural_key(path: Path) -> list[Any]:
    """Sort key so that ``img2`` precedes ``img10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _list_images(spec: _PathArg, pattern: str, side: str) -> list[Path]:
    """Files of ``spec``: a directory filtered by ``pattern`` (``|``-separated globs), or a glob itself."""
    spec_path = Path(spec)
    if spec_path.is_dir():
        files = {p for pat in pattern.split("|") for p in spec_path.glob(pat.strip()) if p.is_file()}
    elif glob.has_magic(str(spec)):
        files = {Path(p) for p in glob.glob(str(spec)) if Path(p).is_file()}
    else:
        raise FileNotFoundError(f"{side} image directory not found: {spec}")
    if not files:
        raise FileNotFoundError(f"no {side} images match {spec!s} (pattern {pattern!r})")
    return sorted(files, key=_natural_key)


class ImageFolderSource(_SourceBase):
    """Frame pairs from image files, paired by (natural) sort order.

    left, right: a directory (its files matching ``pattern``), or a glob such as ``calib/left*.jpg``
    (so both sides may live in one folder). pattern: ``|``-separated globs used for directories.
    loop: start again from the first pair at the end.

    Raises:
        FileNotFoundError: for a missing directory or no matching file. ValueError: when the two
            sides hold different numbers of images, or (on read) naming the path of an unreadable
            image or of a pair whose sizes differ from the first pair's.
    """

    def __init__(self, left: _PathArg, right: _PathArg, pattern: str = "*.png|*.jpg", loop: bool = False) -> None:
        self.left_files = _list_images(left, pattern, "left")
        self.right_files = _list_images(right, pattern, "right")
        if len(self.left_files) != len(self.right_files):
            raise ValueError(
                f"left ({left}: {len(self.left_files)} images) and right ({right}: {len(self.right_files)} images) "
                "differ in count"
            )
        self.loop = loop
        self._index = 0
        self._closed = False
        first = self._imread(self.left_files[0])
        self._size = (first.shape[1], first.shape[0])

    @staticmethod
    def _imread(path: Path) -> Frame:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # decodes grayscale straight to BGR
        if image is None:
            raise ValueError(f"cannot read image: {path}")
        return image

    @property
    def frame_size(self) -> tuple[int, int]:
        return self._size

    def __len__(self) -> int:
        return len(self.left_files)

    def read(self) -> tuple[Frame, Frame] | None:
        if self._closed:
            return None
        if self._index >= len(self.left_files):
            if not self.loop:
                return None
            self._index = 0
        left_path, right_path = self.left_files[self._index], self.right_files[self._index]
        self._index += 1
        left, right = self._imread(left_path), self._imread(right_path)
        for path, image in ((left_path, left), (right_path, right)):
            if (image.shape[1], image.shape[0]) != self._size:
                raise ValueError(f"image {path} is {image.shape[1]}x{image.shape[0]}, expected {self._size}")
        return left, right

    def close(self) -> None:
        self._closed = True


class CameraPairSource(_SourceBase):
    """Two live cameras read through ``cv2.VideoCapture`` (device index or device path / URL).

    A background thread grabs pairs as fast as the cameras deliver them (both frames grabbed
    before either is decoded, to keep the pair as close in time as the drivers allow: no hardware
    sync) and keeps only the newest, with the monotonic time it was grabbed. :meth:`read` returns
    that pair once: it never blocks its caller (the node's executor) on a camera for more than
    ``stall_s``, never returns a frame that waited in a driver queue (the driver's own buffer is
    asked to hold one frame), and a camera that stops delivering (unplugged) makes it return None
    after ``stall_s`` (None means "no new pair yet", not the end of the stream); an error in the
    grabber is raised from the next :meth:`read` as an OSError. :attr:`frame_age_s` is how long before the read the returned pair was
    grabbed, for stamping it with its capture time.

    Args:
        width, height: requested size in pixels; fps: requested rate (> 0).
        stall_s: longest wait for a new pair in :meth:`read` (default two frame periods).
        capture_factory: opens one device (``cv2.VideoCapture``; injectable for tests).

    Raises:
        ValueError: for non-positive width/height/fps/stall_s, a device that cannot be opened
            (naming it), or cameras that deliver different frame sizes.
    """

    def __init__(self, left_device: int | str, right_device: int | str, width: int = 640, height: int = 480,
                 fps: float = 30.0, stall_s: float | None = None,
                 capture_factory: Callable[[int | str], Any] = cv2.VideoCapture) -> None:
        stall_s = 2.0 / fps if stall_s is None and np.isfinite(fps) and fps > 0 else stall_s
        for name, value in (("width", width), ("height", height), ("fps", fps), ("stall_s", stall_s)):
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        self._stall_s = float(stall_s)
        self._captures: list[Any] = []
        for side, device in (("left", left_device), ("right", right_device)):
            capture = capture_factory(device)
            if not capture.isOpened():
                self._release()
                raise ValueError(f"cannot open {side} camera device {device!r}")
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            capture.set(cv2.CAP_PROP_FPS, fps)
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a queue (where the backend can)
            self._captures.append(capture)
        sizes = [_capture_size(c) for c in self._captures]
        if sizes[0] != sizes[1]:
            self._release()
            raise ValueError(f"cameras {left_device!r} and {right_device!r} deliver different sizes {sizes}")
        self._size = sizes[0]
        self._cond = threading.Condition()
        self._latest: tuple[Frame, Frame] | None = None
        self._latest_t = 0.0
        self._grabbed = self._returned = 0  # pairs grabbed / the count at the last read
        self.frame_age_s = 0.0
        self._error: Exception | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._grab_loop, name="camera-grabber", daemon=True)
        self._thread.start()

    @property
    def frame_size(self) -> tuple[int, int]:
        return self._size

    def _grab_loop(self) -> None:
        """Grab pairs until closed; releases the devices itself (a grab may block in the driver
        beyond :meth:`close`'s wait, and a device must not be released under it)."""
        try:
            while not self._closing:
                if not all(c.grab() for c in self._captures):
                    time.sleep(0.005)  # a failed grab returns at once on some backends: do not spin
                    continue
                frames = [capture.retrieve() for capture in self._captures]
                if not all(ok for ok, _ in frames):
                    continue
                pair = (_to_bgr(frames[0][1]), _to_bgr(frames[1][1]))
                with self._cond:
                    self._latest, self._latest_t = pair, time.monotonic()
                    self._grabbed += 1
                    self._cond.notify_all()
        except Exception as exc:  # noqa: BLE001 - a driver or conversion error ends the thread: read() reports it
            with self._cond:
                self._error = exc
                self._cond.notify_all()
        finally:
            self._release()

    def read(self) -> tuple[Frame, Frame] | None:
        """The newest pair not returned before, waiting up to ``stall_s`` for one; None when the
        cameras delivered none in that time (or the source is closed).

        Raises:
            OSError: the grabber thread failed (once; the source delivers nothing after it).
        """
        with self._cond:
            if not self._cond.wait_for(
                    lambda: self._grabbed > self._returned or self._closing or self._error is not None,
                    self._stall_s) or self._closing:
                return None
            if self._error is not None:
                error, self._error = self._error, None
                self._closing = True
                raise OSError(f"camera grabber stopped: {type(error).__name__}: {error}") from error
            self._returned = self._grabbed
            self.frame_age_s = time.monotonic() - self._latest_t
            return self._latest

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if hasattr(self, "_thread"):
            self._thread.join(timeout=2.0)  # the thread releases the devices (a blocked grab: when it returns)
        else:
            self._release()

    def _release(self) -> None:
        for capture in self._captures:
            capture.release()
        self._captures = []


SOURCE_KINDS: dict[str, type[_SourceBase]] = {
    "video": VideoPairSource,
    "images": ImageFolderSource,
    "camera": CameraPairSource,
}


def open_source(kind: str, **params: Any) -> StereoSource:
    """Construct the source named ``kind`` (one of :data:`SOURCE_KINDS`) with ``params``.

    Raises:
        ValueError: naming ``kind`` and the allowed values, or the kind and bad parameter names;
            plus whatever the source's constructor raises.
    """
    if kind not in SOURCE_KINDS:
        raise ValueError(f"unknown source kind {kind!r}; allowed: {sorted(SOURCE_KINDS)}")
    try:
        return SOURCE_KINDS[kind](**params)
    except TypeError as exc:
        raise ValueError(f"bad parameters {sorted(params)} for source kind {kind!r}: {exc}") from exc
