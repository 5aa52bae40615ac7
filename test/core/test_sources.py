"""Tests for core.sources with the real vtest.avi video and the real chessboard image pairs."""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from object_permanence.core.sources import (
    SOURCE_KINDS,
    CameraPairSource,
    ImageFolderSource,
    StereoSource,
    VideoPairSource,
    open_source,
)



@pytest.fixture
def video(shared_data: Path) -> Path:
    return shared_data / "video" / "vtest.avi"


@pytest.fixture
def chess(shared_data: Path) -> Path:
    return shared_data / "stereo_calibration"


def _write_video(path: Path, n_frames: int, size: tuple[int, int] = (64, 48)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
    for k in range(n_frames):
        writer.write(np.full((size[1], size[0], 3), 40 * k, np.uint8))
    writer.release()
    return path


def _is_bgr_pair(pair, size: tuple[int, int]) -> bool:
    return all(f.dtype == np.uint8 and f.shape == (size[1], size[0], 3) for f in pair)


def test_side_by_side_video_gives_two_halves_to_the_end(video):
    with VideoPairSource(video, side_by_side=True) as source:
        assert isinstance(source, StereoSource)
        assert source.frame_size == (384, 576)
        first = source.read()
        count = 1 + sum(1 for _ in source)
        assert source.read() is None
    assert count == 795
    assert _is_bgr_pair(first, (384, 576))
    raw = cv2.VideoCapture(str(video)).read()[1]
    assert np.array_equal(first[0], raw[:, :384]) and np.array_equal(first[1], raw[:, 384:])
    assert first[0].flags["C_CONTIGUOUS"]


def test_two_video_files_give_pairs(video):
    source = VideoPairSource(video, video)
    assert source.frame_size == (768, 576)
    pairs = [source.read() for _ in range(3)]
    source.close()
    assert source.read() is None
    for left, right in pairs:
        assert _is_bgr_pair((left, right), (768, 576))
        assert np.array_equal(left, right)
    assert not np.array_equal(pairs[0][0], pairs[2][0])  # the video advances


def test_two_files_end_with_the_shorter_and_loop_rewinds(tmp_path):
    short, longer = _write_video(tmp_path / "a.avi", 3), _write_video(tmp_path / "b.avi", 5)
    assert len(list(VideoPairSource(short, longer))) == 3
    looping = VideoPairSource(short, longer, loop=True)
    frames = [looping.read() for _ in range(7)]
    looping.close()
    assert all(f is not None for f in frames)
    assert np.array_equal(frames[3][0], frames[0][0])  # rewound after 3 pairs
    assert not np.array_equal(frames[1][0], frames[0][0])


def test_video_errors_name_the_path(tmp_path, video):
    with pytest.raises(FileNotFoundError, match="missing.avi"):
        VideoPairSource(tmp_path / "missing.avi", side_by_side=True)
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(ValueError, match="junk.avi"):
        VideoPairSource(junk, side_by_side=True)
    small = _write_video(tmp_path / "small.avi", 2)
    with pytest.raises(ValueError, match="sizes differ"):
        VideoPairSource(video, small)
    with pytest.raises(ValueError, match="side_by_side"):
        VideoPairSource(video, video, side_by_side=True)
    with pytest.raises(ValueError, match="right_path"):
        VideoPairSource(video)


def test_chessboard_globs_in_one_folder(chess):
    source = ImageFolderSource(chess / "left*.jpg", chess / "right*.jpg")
    assert len(source) == 13
    assert [p.name for p in source.left_files[8:10]] == ["left09.jpg", "left11.jpg"]
    assert source.frame_size == (640, 480)
    pairs = list(source)
    assert len(pairs) == 13 and source.read() is None
    left, right = pairs[0]
    assert _is_bgr_pair((left, right), (640, 480))
    gray = cv2.imread(str(chess / "left01.jpg"), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(left[:, :, 0], gray) and np.array_equal(left[:, :, 2], gray)  # gray -> BGR


def test_image_directories_with_pattern_and_loop(tmp_path):
    (tmp_path / "L").mkdir()
    (tmp_path / "R").mkdir()
    for k in (1, 2, 10):  # natural order: 1, 2, 10
        cv2.imwrite(str(tmp_path / "L" / f"f{k}.png"), np.full((20, 30), k, np.uint8))  # grayscale
        cv2.imwrite(str(tmp_path / "R" / f"f{k}.jpg"), np.full((20, 30, 3), 10 * k, np.uint8))
    (tmp_path / "L" / "notes.txt").write_text("ignored")
    source = ImageFolderSource(tmp_path / "L", tmp_path / "R", loop=True)
    values = [int(source.read()[0][0, 0, 0]) for _ in range(5)]
    assert values == [1, 2, 10, 1, 2]
    assert source.frame_size == (30, 20)
    source.close()
    assert source.read() is None


def test_image_folder_errors(tmp_path, chess):
    with pytest.raises(ValueError, match="differ in count"):
        ImageFolderSource(chess / "left0*.jpg", chess / "right*.jpg")
    with pytest.raises(FileNotFoundError, match="no right images"):
        ImageFolderSource(chess / "left*.jpg", chess / "nothing*.png")
    with pytest.raises(FileNotFoundError, match="not_here"):
        ImageFolderSource(tmp_path / "not_here", chess)
    (tmp_path / "L").mkdir()
    (tmp_path / "R").mkdir()
    cv2.imwrite(str(tmp_path / "L" / "a.png"), np.zeros((20, 30), np.uint8))
    cv2.imwrite(str(tmp_path / "R" / "a.png"), np.zeros((21, 30), np.uint8))
    with pytest.raises(ValueError, match=r"R/a\.png is 30x21"):
        ImageFolderSource(tmp_path / "L", tmp_path / "R").read()
    (tmp_path / "R" / "a.png").write_bytes(b"broken")
    with pytest.raises(ValueError, match=r"cannot read image: .*R/a\.png"):
        ImageFolderSource(tmp_path / "L", tmp_path / "R").read()


def test_camera_that_cannot_be_opened():
    with pytest.raises(ValueError, match="cannot open left camera device 99"):
        CameraPairSource(99, 98)
    with pytest.raises(ValueError, match="fps"):
        CameraPairSource(0, 1, fps=0)


class FakeCamera:
    """A ``cv2.VideoCapture`` stand-in: frames numbered by their grab (the pixel value), one every
    ``period_s``, stalling (grab returns False) once ``stall_after`` frames were delivered."""

    def __init__(self, device, period_s: float = 0.005, stall_after: int | None = None, size=(64, 48)) -> None:
        self.device, self.period_s, self.stall_after, self.size = device, period_s, stall_after, size
        self.grabs = 0
        self.released = False
        self.props: dict[int, float] = {}

    def isOpened(self) -> bool:  # noqa: N802 - the cv2 name
        return self.device != "missing"

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FRAME_WIDTH: self.size[0], cv2.CAP_PROP_FRAME_HEIGHT: self.size[1]}.get(prop, 0.0)

    def grab(self) -> bool:
        time.sleep(self.period_s)
        if self.stall_after is not None and self.grabs >= self.stall_after:
            return False
        self.grabs += 1
        return True

    def retrieve(self):
        return True, np.full((self.size[1], self.size[0], 3), self.grabs % 256, np.uint8)

    def release(self) -> None:
        self.released = True


def test_camera_pairs_are_the_newest_grabbed_and_never_repeated():
    """A consumer slower than the cameras gets the newest pair each time (not a queued old one),
    each pair once, with its age; the driver is asked to buffer one frame; close releases both."""
    cams = {}
    source = CameraPairSource("L", "R", fps=200.0, capture_factory=lambda d: cams.setdefault(d, FakeCamera(d)))
    try:
        assert source.frame_size == (64, 48)
        assert all(c.props[cv2.CAP_PROP_BUFFERSIZE] == 1 for c in cams.values())
        seen = [0]
        for _ in range(3):
            # wait for 5 more grabs (by the camera's count, not by time: a loaded machine grabs slower)
            deadline = time.monotonic() + 5.0
            while cams["L"].grabs < seen[-1] + 5 and time.monotonic() < deadline:
                time.sleep(0.005)
            grabbed = cams["L"].grabs
            left, right = source.read()
            seen.append(int(left[0, 0, 0]))
            # the newest pair: the last grab's, or the one before while that one is being retrieved
            assert seen[-1] >= grabbed - 1 >= seen[-2] + 4, seen
            assert left.shape == (48, 64, 3) and 0.0 <= source.frame_age_s < 0.5
    finally:
        source.close()
    assert all(c.released for c in cams.values())
    assert source.read() is None


def test_a_stalled_camera_makes_read_return_none_without_blocking():
    cams = {}
    source = CameraPairSource("L", "R", fps=30.0, capture_factory=lambda d: cams.setdefault(
        d, FakeCamera(d, stall_after=2)))
    try:
        assert source.read() is not None
        time.sleep(0.05)
        source.read()  # the second pair (or None when it came and went)
        start = time.monotonic()
        assert source.read() is None  # unplugged: nothing new within two frame periods
        assert time.monotonic() - start < 0.2
    finally:
        source.close()
    with pytest.raises(ValueError, match="cannot open right camera device 'missing'"):
        CameraPairSource("L", "missing", capture_factory=FakeCamera)
    with pytest.raises(ValueError, match="stall_s"):
        CameraPairSource("L", "R", stall_s=0.0, capture_factory=FakeCamera)


def test_a_grabber_error_is_raised_from_read_once():
    """A driver error in the grabber thread is not swallowed: the next read raises it as an
    OSError (the capture node logs it), and the source delivers nothing after it."""
    class Broken(FakeCamera):
        def retrieve(self):
            raise RuntimeError("USB transfer failed")

    source = CameraPairSource("L", "R", fps=100.0, capture_factory=Broken)
    try:
        with pytest.raises(OSError, match="camera grabber stopped: RuntimeError: USB transfer failed"):
            for _ in range(20):
                source.read()
        assert source.read() is None
    finally:
        source.close()


def test_open_source_factory(video, chess):
    source = open_source("video", left_path=video, side_by_side=True)
    assert isinstance(source, VideoPairSource) and source.frame_size == (384, 576)
    source.close()
    images = open_source("images", left=chess / "left*.jpg", right=chess / "right*.jpg")
    assert isinstance(images, ImageFolderSource) and len(images) == 13
    assert sorted(SOURCE_KINDS) == ["camera", "images", "video"]
    with pytest.raises(ValueError, match=r"'webcam'.*\['camera', 'images', 'video'\]"):
        open_source("webcam")
    with pytest.raises(ValueError, match="bad parameters.*'video'"):
        open_source("video", filename=str(video))


# --- the simulated source ------------------------------------------------------------------------

def test_sim_source_skips_to_the_due_frame_and_never_goes_back():
    from object_permanence.core.sim.source import SimStereoSource

    source = SimStereoSource("clean", seed=3, max_frames=6)
    positions = []
    for due in (0, 0, 3, 1, 9, 9):  # 1 is behind the stream: the next frame; 9 is past its end
        pair = source.read(due)
        positions.append(None if pair is None else (source.position, source.truth.index))
    # frames 1 and 2 skipped; the last frame (5) is delivered though 9 was due; then the end
    assert positions == [(0, 0), (1, 1), (3, 3), (4, 4), (5, 5), None]
    left, right = SimStereoSource("clean", seed=3, max_frames=6).world.render(3)
    source = SimStereoSource("clean", seed=3, max_frames=6)
    skipped = source.read(3)
    assert np.array_equal(skipped[0], left) and np.array_equal(skipped[1], right), "frame 3 as rendered directly"


def test_a_looping_sim_source_keeps_its_position_growing_over_the_wrap():
    from object_permanence.core.sim.source import SimStereoSource

    source = SimStereoSource("clean", seed=3, max_frames=4, loop=True)
    seen = []
    for due in (None, None, 5, None, 11):
        source.read(due)
        seen.append((source.position, source.truth.index))
    assert seen == [(0, 0), (1, 1), (5, 1), (6, 2), (11, 3)]


def test_scene_clock_follows_the_clock_and_reanchors_on_a_jump():
    from object_permanence.core.sim.source import SceneClock

    clock = SceneClock(period_ns=100, max_jump_ns=1000)
    assert clock.due(5_000, 0) == 0 and clock.stamp_ns(0) == 5_000  # anchored at the first reading
    assert clock.due(5_099, 1) == 0  # a tick a hair early: the reader takes the next frame anyway
    assert clock.due(5_100, 1) == 1 and clock.stamp_ns(1) == 5_100
    assert clock.due(5_420, 2) == 4 and clock.stamp_ns(4) == 5_400  # fell behind: frames 2, 3 dropped
    assert clock.reanchored == 0
    assert clock.due(1_000, 5) == 5 and clock.stamp_ns(5) == 1_000  # the clock went back: re-anchored
    assert clock.due(1_100, 6) == 6
    assert clock.due(9_000, 7) == 7 and clock.stamp_ns(7) == 9_000  # ahead by more than max_jump_ns
    assert clock.reanchored == 2
    with pytest.raises(ValueError, match="period_ns"):
        SceneClock(period_ns=100, max_jump_ns=100)
