"""The learned interpolator (task video-interp): the flow method refined by a U-Net, its training
triplets, its measurement while training, export, `imgan interpolate --method learned`, and the
shipped weights against the flow method on motion they never saw."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from imgan.errors import UsageError  # noqa: E402
from imgan.io.video import probe_video, read_frames, write_video  # noqa: E402
from imgan.train.export import export_checkpoint  # noqa: E402
from imgan.train.run import read_eval_log  # noqa: E402
from imgan_video.camera import INTERPOLATION_MOTION, load_photos  # noqa: E402
from imgan_video.interpolate import (dense_flow, in_between, measure_camera_motion, method_function,  # noqa: E402
                                     refiner_frames, refiner_inputs)
from imgan_video.interpolate import warp as opencv_warp  # noqa: E402
from imgan_video.refine import (DOWNSCALE, FlowRefiner, InBetweenFrames, RefinerConfig, RefinerSettings,  # noqa: E402
                                train_refiner, warp)
from imgan_video.spec import INTERP_TASK  # noqa: E402

from ..conftest import run_cli  # noqa: E402
from .test_video_interpolate import psnr, textured_scene  # noqa: E402
from .test_video_natural import photos_folder  # noqa: E402,F401  (a fixture)

def _refine(net: FlowRefiner, a: np.ndarray, b: np.ndarray, factor: int = 2) -> list[np.ndarray]:
    inputs, crop = refiner_inputs(a, b, factor, DOWNSCALE)
    with torch.no_grad():
        return refiner_frames(net(*(torch.from_numpy(x) for x in inputs)).numpy(), crop)


def test_the_graphs_warp_is_opencvs_remap():
    a, b = textured_scene(0), textured_scene(5)
    flow = dense_flow(a, b) * 1.7  # past the edges too: both repeat the border
    ours = warp(torch.from_numpy(a).permute(2, 0, 1)[None].float(), torch.from_numpy(flow).permute(2, 0, 1)[None])
    # OpenCV rounds sampling positions to 1/32 px; nothing else differs
    assert np.abs(ours[0].permute(1, 2, 0).numpy() - opencv_warp(a, flow)).max() < 0.05


def test_an_untrained_refiner_is_the_flow_method_at_every_t():
    a, b = textured_scene(0, size=60)[:, :58], textured_scene(6, size=60)[:, :58]  # 58: padded to 60 and cropped back
    for factor in (2, 3):
        learned = _refine(FlowRefiner().eval(), a, b, factor)
        classical = [in_between(a, b, k / factor) for k in range(1, factor)]
        assert [frame.shape for frame in learned] == [(60, 58, 3)] * (factor - 1)
        for ours, theirs in zip(learned, classical):
            assert np.abs(ours.astype(int) - theirs).max() <= 1


def test_the_head_composes_flow_corrections_visibility_and_residual():
    a, b = textured_scene(0, size=32), textured_scene(4, size=32)
    net = FlowRefiner(RefinerConfig(widths=(4, 4, 4))).eval()
    with torch.no_grad():
        net.head.bias[4] = 30.0  # visibility: all from A's warp
        only_a = _refine(net, a, b)[0]
        flows = dense_flow(a, b), dense_flow(b, a)
        to_a = -0.25 * flows[0] + 0.25 * flows[1]
        assert np.abs(only_a.astype(int) - np.clip(np.rint(opencv_warp(a, to_a)), 0, 255)).max() <= 1
        net.head.bias[5:8] = torch.tensor([0.2, 0.0, -0.2])  # the residual adds where neither warp shows
        shifted = _refine(net, a, b)[0].astype(int) - only_a
        assert np.median(shifted[..., 0]) == 51 and np.median(shifted[..., 1]) == 0
        assert np.median(shifted[..., 2]) == -51
        net.head.bias[:] = 0.0
        net.head.bias[0] = 1.0  # A's flow moved one FLOW_SCALE right: another picture
        assert psnr(_refine(net, a, b)[0], in_between(a, b, 0.5)) < 30


def test_training_triplets_are_fixed_by_the_seed_and_carry_their_time(photos_folder):
    clip = np.stack([textured_scene(2 * t, size=96) for t in range(8)])
    data = InBetweenFrames([clip], load_photos(photos_folder, long_side=64), crop=32)
    seen_times = set()
    for index in range(24):
        np.random.seed(index)
        item = data[index]
        np.random.seed(index)
        again = data[index]
        assert all(torch.equal(item[key], again[key]) for key in item)
        assert item["a"].shape == item["truth"].shape == (3, 32, 32) and item["flow_ab"].shape == (2, 32, 32)
        seen_times.add(round(float(item["t"]), 4))
    assert seen_times <= {0.5, 0.3333, 0.6667, 0.25, 0.75} and len(seen_times) >= 3


def test_train_measure_export_and_interpolate_with_the_learned_model(tmp_path, photos_folder):
    clip = write_video(iter([textured_scene(2 * t, size=48) for t in range(7)]), tmp_path / "pan.mp4", fps=12)
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(iter([textured_scene(1.5 * t, size=80) for t in range(8)]), videos / "train.mp4", fps=10)
    run_dir = tmp_path / "run"
    settings = RefinerSettings(videos=videos, photos=photos_folder, heldout=clip, steps=4, batch_size=2, crop=32,
                               widths=(4, 4, 4), eval_every=2, run_dir=run_dir, threads=1)
    result = train_refiner(settings)
    assert result.steps_done == 4
    records = read_eval_log(run_dir)
    assert [record["step"] for record in records] == [2, 4]
    assert records[-1]["held_back"] == 3 and records[-1]["flow_psnr"] > 20 and records[-1]["learned_psnr"] > 20

    onnx = tmp_path / f"{INTERP_TASK}-tiny.onnx"
    report = export_checkpoint(INTERP_TASK, result.checkpoint, onnx, name="tiny")
    card = json.loads(report.card_path.read_text())
    assert card["metrics"]["heldout_during_training"]["step"] == 4 and card["running"]["pad_multiple"] == DOWNSCALE
    assert card["provenance"]["recipe"]["camera_motion"] == json.loads(json.dumps(dataclasses.asdict(INTERPOLATION_MOTION)))
    assert card["licence"] and "refined by a U-Net [4, 4, 4]" in card["description"]

    out = tmp_path / "pan_x3.mp4"
    written = run_cli("interpolate", clip, "--method", "learned", "--weights", onnx, "--factor", 3, "-o", out)
    assert written.returncode == 0, written.stderr
    assert probe_video(out).frame_count == 19
    frames = list(read_frames(out))
    assert psnr(frames[1], textured_scene(2 / 3, size=48)) > psnr(frames[0], textured_scene(2 / 3, size=48))

    measured = run_cli("interpolate", clip, "--measure", "--weights", onnx, "--json")
    assert measured.returncode == 0, measured.stderr
    methods = json.loads(measured.stdout)["methods"]
    assert set(methods) == {"flow", "blend", "learned"}
    assert abs(methods["learned"]["psnr"] - methods["flow"]["psnr"]) < 3  # 4 steps from the flow method
    camera = measure_camera_motion(photos_folder, count=2, weights=onnx, threads=1)
    assert camera["held_back"] == 4 and set(camera["methods"]) == {"flow", "blend", "learned"}
    assert camera["methods"]["flow"]["psnr"] > camera["methods"]["blend"]["psnr"]  # the clips move

    from ..test_cli import _modules_after  # inference stays torch-free

    modules = _modules_after(["interpolate", str(clip), "--method", "learned", "--weights", str(onnx),
                              "-o", str(tmp_path / "again.mp4")])
    assert "HEAVY=\n" in modules and probe_video(tmp_path / "again.mp4").frame_count == 13


def test_weights_without_the_learned_method_or_of_another_task_are_refused(tmp_path):
    with pytest.raises(UsageError, match="--method learned"):
        method_function("flow", weights="flow-refine")
    clip = write_video(iter([textured_scene(t) for t in range(3)]), tmp_path / "c.mp4", fps=10)
    wrong = run_cli("interpolate", clip, "--method", "learned", "--weights", "weights/sr-srresnet-x4.onnx",
                    "-o", tmp_path / "d.mp4")
    assert wrong.returncode == 1 and "not 'video-interp'" in wrong.stderr and "Traceback" not in wrong.stderr


def test_learned_without_weights_says_how_to_get_them(tmp_path):
    # none ship yet (see the README); a user's own, by --weights, is the way
    clip = write_video(iter([textured_scene(t) for t in range(3)]), tmp_path / "c.mp4", fps=10)
    result = run_cli("interpolate", clip, "--method", "learned", "-o", tmp_path / "d.mp4")
    assert result.returncode == 2 and "imgan train video-interp" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "d.mp4").exists()
