"""The video task: ConvLSTM state handling, Moving MNIST, single-step ONNX rollout, `imgan predict`, evaluation."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from imgan.errors import InputError, UsageError  # noqa: E402
from imgan.io.video import probe_video, write_video  # noqa: E402
from imgan.train.export import export_checkpoint  # noqa: E402
from imgan_video import TASK, mmnist  # noqa: E402
from imgan_video.evaluate import baseline_predictions, evaluate_mmnist, frame_errors  # noqa: E402
from imgan_video.infer import load_step_model, rollout  # noqa: E402
from imgan_video.model import ConvLSTMCell, FramePredictor, VideoNetConfig, build_generator  # noqa: E402
from imgan_video.recipe import ClipWindows, MovingMnist, gradient_difference_loss, train_video  # noqa: E402

from ..conftest import run_cli  # noqa: E402

TINY = VideoNetConfig(channels=1, widths=(4, 8), hidden=(8, 6), kernel=3)


# --------------------------------------------------------------------------- the model


def test_convlstm_cell_shapes_zero_state_and_forget_bias():
    torch.manual_seed(0)
    cell = ConvLSTMCell(in_channels=5, hidden=7, kernel=3)
    x = torch.rand(2, 5, 6, 10)
    h0, c0 = cell.zero_state(x)
    assert h0.shape == c0.shape == (2, 7, 6, 10) and not h0.any() and not c0.any()
    h, c = cell(x, (h0, c0))
    assert h.shape == c.shape == (2, 7, 6, 10)
    assert torch.all(h.abs() < 1)  # h = o * tanh(c)
    assert torch.all(cell.gates.bias[7:14] == 1.0)  # the forget gate's bias


def test_convlstm_state_carries_over():
    torch.manual_seed(0)
    cell = ConvLSTMCell(3, 4)
    x1, x2 = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    state = cell(x1, cell.zero_state(x1))
    carried, _ = cell(x2, state)
    fresh, _ = cell(x2, cell.zero_state(x2))
    assert (carried - fresh).abs().max() > 1e-3  # the first frame changes what the second one gives
    again, _ = cell(x2, cell(x1, cell.zero_state(x1)))
    assert torch.equal(carried, again)  # and deterministically so


def test_predictor_rollout_is_the_step_loop():
    torch.manual_seed(0)
    model = FramePredictor(TINY).eval()
    context = torch.rand(2, 3, 1, 16, 24)
    with torch.no_grad():
        out = model(context, future=4)
        assert out.shape == (2, 3 - 1 + 4, 1, 16, 24)
        assert out.min() >= 0 and out.max() <= 1
        states = model.zero_states(context[:, 0])
        assert [tuple(h.shape) for h, _ in states] == [(2, 8, 4, 6), (2, 6, 4, 6)]
        for t in range(3):
            frame, states = model.step(context[:, t], states)
        manual = [frame]
        for _ in range(3):
            frame, states = model.step(frame, states)
            manual.append(frame)
    assert torch.allclose(out[:, 2:], torch.stack(manual, dim=1))


def test_teacher_forcing_feeds_the_truth():
    torch.manual_seed(0)
    model = FramePredictor(TINY).eval()
    context, truth = torch.rand(1, 2, 1, 8, 8), torch.rand(1, 3, 1, 8, 8)
    with torch.no_grad():
        forced = model(context, 3, truth=truth, teacher_forcing=1.0)
        # with every frame forced, the forecast is the one-step prediction from the true clip
        one_step = model(torch.cat([context, truth[:, :2]], dim=1), 1)
    assert torch.allclose(forced[:, -3:], one_step[:, -3:])


def test_gradient_difference_loss():
    real = torch.zeros(1, 1, 8, 8)
    real[..., 2:6, 2:6] = 1.0
    assert gradient_difference_loss(real, real) == 0
    assert gradient_difference_loss(torch.full_like(real, 0.5), real) > 0


# --------------------------------------------------------------------------- Moving MNIST


def _digits(count: int = 10_000) -> np.ndarray:
    """Stand-in digits: a filled rectangle of a random size and brightness per "digit"."""
    rng = np.random.default_rng(0)
    digits = np.zeros((count, 28, 28), np.uint8)
    for digit in digits:
        top, left = rng.integers(0, 10, size=2)
        digit[top : top + rng.integers(8, 18), left : left + rng.integers(4, 18)] = rng.integers(100, 256)
    return digits


def _write_idx(path, digits: np.ndarray):
    header = np.array([0x803, len(digits), 28, 28], dtype=">u4").tobytes()
    with gzip.open(path, "wb") as handle:
        handle.write(header + digits.tobytes())
    return path


def test_moving_mnist_is_deterministic_and_in_range():
    digits = _digits(50)
    first = mmnist.make_sequence(digits, np.random.default_rng(7))
    again = mmnist.make_sequence(digits, np.random.default_rng(7))
    other = mmnist.make_sequence(digits, np.random.default_rng(8))
    assert first.shape == (20, 64, 64) and first.dtype == np.uint8
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert first.max() <= digits.max() and first.min() == 0 and first.max() > 0
    # the digits move: consecutive frames differ, and every frame shows something
    assert all(not np.array_equal(a, b) for a, b in zip(first, first[1:]))
    assert all(frame.any() for frame in first)


def test_fixed_test_set_is_prefix_stable_and_uses_the_test_digits():
    digits = _digits()
    three = mmnist.fixed_test_set(digits, 3, length=12)
    assert three.shape == (3, 12, 64, 64)
    assert np.array_equal(mmnist.fixed_test_set(digits, 1, start=2, length=12)[0], three[2])
    blanked = digits.copy()
    blanked[8000:] = 0  # test sequences are made of digits 8000-9999 only
    assert not mmnist.fixed_test_set(blanked, 2).any()
    with pytest.raises(InputError):
        mmnist.fixed_test_set(digits, 1, start=mmnist.TEST_SEQUENCES)


def test_training_items_are_float_in_unit_range_and_follow_the_seed():
    dataset = MovingMnist(_digits(), length=6)
    np.random.seed(3)
    item = dataset[0]["frames"]
    np.random.seed(3)
    assert torch.equal(item, dataset[0]["frames"])
    assert item.shape == (6, 1, 64, 64) and item.dtype == torch.float32
    assert 0.0 <= float(item.min()) and float(item.max()) <= 1.0 and float(item.max()) > 0.3


def test_load_digits_reads_idx_and_rejects_truncated_files(tmp_path):
    digits = _digits(12)
    assert np.array_equal(mmnist.load_digits(_write_idx(tmp_path / "d.gz", digits)), digits)
    with gzip.open(tmp_path / "cut.gz", "wb") as handle:
        handle.write(np.array([0x803, 12, 28, 28], dtype=">u4").tobytes() + digits.tobytes()[:500])
    with pytest.raises(InputError, match="truncated"):
        mmnist.load_digits(tmp_path / "cut.gz")


def test_clip_windows_and_training_on_rgb_clips(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    _square_clip(folder / "long.mp4", frames=12, size=40)
    _square_clip(folder / "short.mp4", frames=5, size=40)  # fewer frames than a window: left out
    windows = ClipWindows(folder, size=16, channels=3, length=6)
    assert len(windows) == 12 - 6 + 1
    frames = windows[0]["frames"]
    assert frames.shape == (6, 3, 16, 16) and 0.0 <= float(frames.min()) and float(frames.max()) <= 1.0
    options = dict(steps=1, videos=folder, size=16, gray=False, mnist=None, context=3, future=3, hidden="4",
                   widths="4,4", kernel=3, batch_size=2, lr=1e-3, l2=1.0, l1=0.0, bce=0.0, context_loss=0.5, gdl=0.0,
                   adversarial=0.0, gan_mode="lsgan", teacher_forcing=0.5, eval_every=1, eval_sequences=0,
                   name="clips", run_dir=tmp_path / "run", resume=False, threads=None, device="cpu", seed=0)
    result = train_video(**options)
    state = torch.load(result.checkpoint, weights_only=True)
    assert result.steps_done == 1 and state["model_config"]["channels"] == 3


def test_train_refuses_a_name_that_is_not_one_plain_folder_name(tmp_path):
    result = run_cli("train", "video", "--name", "x/../../..", "--steps", 1)
    assert result.returncode == 2 and "invalid name" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(UsageError, match="invalid name"):
        train_video(steps=1, videos=None, size=64, gray=True, mnist=None, context=3, future=3, hidden="4", widths="4,4",
                    kernel=3, batch_size=2, lr=1e-3, l2=1.0, l1=0.0, bce=0.0, context_loss=0.5, gdl=0.0,
                    adversarial=0.0, gan_mode="lsgan", teacher_forcing=0.0, eval_every=1, eval_sequences=0,
                    name="x/../../..", run_dir=None, resume=False, threads=None, device="cpu", seed=0)


def _set_motion_head(model: FramePredictor, *, tap_x: int, tap_y: int, mask_logit: float | None = None) -> None:
    """Make the decoder's last layer output constants: one-hot kernels [and the mask logit]."""
    k = model.config.motion_kernel
    last = model.decoder[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        first = model.drawn_channels + (1 if model.config.draw_new else 0)  # [drawn, mask,] kx, ky
        last.bias[first + tap_x] = last.bias[first + k + tap_y] = 30.0
        if mask_logit is not None:
            last.bias[model.drawn_channels] = mask_logit


def test_motion_head_moves_the_input_frames_pixels():
    torch.manual_seed(0)
    model = FramePredictor(VideoNetConfig(channels=1, widths=(4, 8), hidden=(8,), motion_kernel=5)).eval()
    frame = torch.rand(2, 1, 12, 16)
    states = model.zero_states(frame)
    with torch.no_grad():
        _set_motion_head(model, tap_x=4, tap_y=1)  # read 2 px to the right, 1 px up
        moved, _ = model.step(frame, states)
    expected = torch.zeros_like(frame)
    expected[..., 1:, :-2] = frame[..., :-1, 2:]  # the content moves 2 px left and 1 px down
    assert torch.allclose(moved, expected, atol=1e-6)


def test_motion_head_with_drawn_pixels_blends_by_its_mask():
    torch.manual_seed(0)
    model = FramePredictor(VideoNetConfig(channels=1, widths=(4, 8), hidden=(8,), motion_kernel=3, draw_new=True)).eval()
    frame = torch.rand(1, 1, 8, 8)
    states = model.zero_states(frame)
    with torch.no_grad():
        _set_motion_head(model, tap_x=1, tap_y=1, mask_logit=30.0)  # mask 1: the frame, unmoved
        assert torch.allclose(model.step(frame, states)[0], frame, atol=1e-6)
        _set_motion_head(model, tap_x=1, tap_y=1, mask_logit=-30.0)  # mask 0: every pixel drawn
        assert torch.allclose(model.step(frame, states)[0], torch.full_like(frame, 0.5), atol=1e-6)  # sigmoid(0)


def test_frame_difference_state_carries_the_last_input_frame():
    torch.manual_seed(0)
    config = VideoNetConfig(channels=1, widths=(4, 8), hidden=(8, 6), frame_difference=True)
    model = FramePredictor(config).eval()
    first, second = torch.rand(2, 1, 16, 12), torch.rand(2, 1, 16, 12)
    states = model.zero_states(first)
    assert [tuple(t.shape) for group in states for t in group] == [(2, 8, 4, 3)] * 2 + [(2, 6, 4, 3)] * 2 + [(2, 16, 4, 3)]
    with torch.no_grad():
        _, after_first = model.step(first, states)
        assert torch.equal(torch.nn.functional.pixel_shuffle(after_first[-1][0], 4), first)
        with_memory, _ = model.step(second, after_first)
        forgotten = [*after_first[:-1], states[-1]]  # same LSTM memory, but no previous frame
        without, _ = model.step(second, forgotten)
    assert (with_memory - without).abs().max() > 1e-4  # the difference image reaches the output


def test_motion_head_starts_near_copying_the_frame():
    torch.manual_seed(0)
    model = FramePredictor(VideoNetConfig(motion_kernel=9)).eval()
    frame = torch.zeros(1, 1, 64, 64)
    frame[..., 20:40, 24:32] = 1.0
    with torch.no_grad():
        prediction, _ = model.step(frame, model.zero_states(frame))
    # half moved (mask about 0.5), and what is moved stays mostly where it was
    assert prediction[..., 20:40, 24:32].mean() > 0.6 and prediction[..., :, 48:].mean() < 0.6
    with pytest.raises(ValueError, match="odd"):
        FramePredictor(VideoNetConfig(motion_kernel=4))


def test_motion_model_trains_exports_and_rolls_out_in_onnx_like_torch(tmp_path):
    """The dynamic-filter head through train -> export (its shift stacks are constants) -> warm start."""
    from imgan.train.checkpoint import generator_from_checkpoint

    mnist_file = _write_idx(tmp_path / "digits.gz", _digits())
    options = dict(videos=None, size=64, gray=True, mnist=mnist_file, context=3, future=3, hidden="8", widths="4,8",
                   kernel=3, batch_size=2, lr=1e-3, l2=1.0, l1=0.0, bce=1.0, context_loss=0.5, gdl=0.0, adversarial=0.0,
                   gan_mode="lsgan", teacher_forcing=0.0, eval_every=2, eval_sequences=0, name="motion", resume=False,
                   threads=None, device="cpu", seed=0, motion_kernel=5, frame_difference=True)
    result = train_video(steps=2, run_dir=tmp_path / "run", **options)
    report = export_checkpoint(TASK, result.checkpoint, tmp_path / "video-motion.onnx", name="motion")
    card = json.loads(report.card_path.read_text())
    assert card["model_config"]["motion_kernel"] == 5 and card["running"]["inference"]["state_names"][-1] == "previous"
    generator, _ = generator_from_checkpoint(result.checkpoint, build_generator)
    context = torch.rand(1, 3, 1, 24, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = generator(context, 4)[:, -4:].numpy()
    got = rollout(load_step_model(report.path, device="cpu"), context.numpy(), 4)
    assert np.abs(got - expected).max() <= 1e-4
    warm = train_video(steps=1, run_dir=tmp_path / "warm", init_from=report.path, **{**options, "lr": 1e-9})
    assert warm.steps_done == 1
    with pytest.raises(UsageError, match="odd"):
        train_video(steps=1, run_dir=tmp_path / "even", **{**options, "motion_kernel": 4})


# --------------------------------------------------------------------------- a tiny trained and exported model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two training steps of a tiny model on stand-in digits, exported: (checkpoint, onnx, mnist file)."""
    root = tmp_path_factory.mktemp("video")
    mnist_file = _write_idx(root / "digits.gz", _digits())
    result = train_video(steps=2, videos=None, size=64, gray=True, mnist=mnist_file, context=3, future=3,
                         hidden="8,6", widths="4,8", kernel=3, batch_size=2, lr=1e-3, l2=1.0, l1=0.0, bce=1.0, context_loss=0.5,
                         gdl=0.1, adversarial=0.1, gan_mode="lsgan", teacher_forcing=0.0, eval_every=2,
                         eval_sequences=2, name="tiny", run_dir=root / "run", resume=False, threads=None,
                         device="cpu", seed=0)
    report = export_checkpoint(TASK, result.checkpoint, root / "video-tiny.onnx", name="tiny")
    return result.checkpoint, report.path, mnist_file


def test_export_writes_a_step_model_with_its_card(trained):
    checkpoint, onnx_path, _ = trained
    card = json.loads(onnx_path.with_suffix(".json").read_text())
    running = card["running"]
    assert card["task"] == "video" and card["name"] == "tiny" and running["pad_multiple"] == 4
    assert running["inference"]["state_names"] == ["h0", "c0", "h1", "c1"] and running["inference"]["context_frames"] == 3
    assert card["metrics"]["heldout_during_training"]["step"] == 2  # measured while training
    model = load_step_model(onnx_path)
    assert model.channels == 1 and model.state_channels == [8, 8, 6, 6]


def test_training_measures_every_chunk_and_notes_no_resumption(tmp_path):
    """Chunks of --eval-every steps: one eval.jsonl record each; run.json sees one uninterrupted run."""
    from imgan.train.run import read_eval_log, read_run

    result = train_video(steps=3, videos=None, size=64, gray=True, mnist=_write_idx(tmp_path / "d.gz", _digits()),
                         context=2, future=2, hidden="4", widths="4,4", kernel=3, batch_size=2, lr=1e-3, l2=1.0,
                         l1=0.0, bce=0.0, context_loss=0.5, gdl=0.0, adversarial=0.0, gan_mode="lsgan",
                         teacher_forcing=0.0, eval_every=1, eval_sequences=1, name="chunks", run_dir=tmp_path / "run",
                         resume=False, threads=None, device="cpu", seed=0)
    assert [record["step"] for record in read_eval_log(result.run_dir)] == [1, 2, 3]
    run = read_run(result.run_dir)
    assert run["resumptions"] == [] and run["recipe"]["context"] == 2 and run["recipe"]["data"] == "moving-mnist"


def test_training_can_start_from_the_exported_onnx(trained, tmp_path):
    """Fine-tuning shipped weights: the first checkpoint of the new run continues from them."""
    from imgan.train.checkpoint import generator_from_checkpoint

    checkpoint, shipped, mnist_file = trained
    onnx_path = tmp_path / shipped.name  # a copy whose card names another licence than the fine-tune's data
    onnx_path.write_bytes(shipped.read_bytes())
    card = json.loads(shipped.with_suffix(".json").read_text())
    onnx_path.with_suffix(".json").write_text(json.dumps({**card, "licence": "CC0 (the start's own data)"}))
    options = dict(videos=None, size=64, gray=True, mnist=mnist_file, context=3, future=3, hidden="8,6",
                   widths="4,8", kernel=3, batch_size=2, lr=1e-9, l2=1.0, l1=0.0, bce=0.0, context_loss=0.0, gdl=0.0,
                   adversarial=0.0, gan_mode="lsgan", teacher_forcing=0.0, eval_every=1, eval_sequences=0,
                   name="warm", resume=False, threads=None, device="cpu", seed=0)
    result = train_video(steps=1, run_dir=tmp_path / "warm", init_from=onnx_path, lr_schedule="cosine", **options)
    before, _ = generator_from_checkpoint(checkpoint, build_generator)
    after, _ = generator_from_checkpoint(result.checkpoint, build_generator, ema=False)
    for key, value in before.state_dict().items():
        assert torch.allclose(after.state_dict()[key], value, atol=1e-5), key  # lr 1e-9: one step moves nothing
    report = export_checkpoint(TASK, result.checkpoint, tmp_path / "video-warm.onnx", name="warm")
    card = json.loads(report.card_path.read_text())
    provenance = card["provenance"]
    start = provenance["init_from"]
    # what the start learnt from binds the fine-tune's export too
    assert card["licence"].startswith("CC BY-SA 3.0") and card["licence"].endswith("CC0 (the start's own data)")
    assert {"weights": Path(start["from"]).name, "step": start["step"]} == {"weights": "video-tiny.onnx", "step": 2}
    assert provenance["train_config"]["lr_schedule"] == "cosine"
    with pytest.raises(Exception, match="different model"):
        train_video(steps=1, run_dir=tmp_path / "other", init_from=onnx_path, **{**options, "hidden": "8,8"})


def test_train_init_from_takes_the_start_model_options_the_command_line_leaves_out(trained, tmp_path):
    """`imgan train video --init-from W.onnx` without --hidden/--widths fine-tunes W's own layers."""
    from imgan.train.run import read_run

    _, shipped, mnist_file = trained
    common = ("train", "video", "--mnist", mnist_file, "--init-from", shipped, "--steps", "1", "--context", "3",
              "--future", "3", "--batch-size", "2", "--eval-sequences", "0", "--device", "cpu", "--threads", "1")
    tuned = run_cli(*common, "--run-dir", tmp_path / "tuned")
    assert tuned.returncode == 0, tuned.stderr
    model = read_run(tmp_path / "tuned")["model_config"]
    assert (model["hidden"], model["widths"]) == ([8, 6], [4, 8])
    refused = run_cli(*common, "--run-dir", tmp_path / "refused", "--hidden", "8,8")
    assert refused.returncode != 0 and "different model" in refused.stderr


def test_onnx_single_step_rollout_equals_pytorch_rollout(trained):
    from imgan.train.checkpoint import generator_from_checkpoint

    checkpoint, onnx_path, _ = trained
    generator, _ = generator_from_checkpoint(checkpoint, build_generator)
    context = torch.rand(2, 3, 1, 32, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = generator(context, 3)[:, -3:].numpy()
    got = rollout(load_step_model(onnx_path, device="cpu"), context.numpy(), 3)
    assert got.shape == (2, 3, 1, 32, 48)
    assert np.abs(got - expected).max() <= 1e-4


# --------------------------------------------------------------------------- `imgan predict`


def _square_clip(path, frames: int = 14, size: int = 64):
    """A white square moving right by 3 px per frame on black."""
    clip = []
    for t in range(frames):
        frame = np.zeros((size, size, 3), np.uint8)
        frame[20:36, 4 + 3 * t : 20 + 3 * t] = 255
        clip.append(frame)
    return write_video(clip, path, fps=10)


def test_predict_cli_appends_the_predicted_frames(trained, tmp_path):
    _, onnx_path, _ = trained
    clip = _square_clip(tmp_path / "square.mp4")
    out, sheet = tmp_path / "out.mp4", tmp_path / "sheet.png"
    result = run_cli("predict", clip, "--weights", onnx_path, "--context", 10, "--future", 5, "-o", out, "--sheet", sheet)
    assert result.returncode == 0, result.stderr
    assert probe_video(out).frame_count == 15 and (probe_video(out).width, probe_video(out).height) == (64, 64)
    from PIL import Image

    # rows: 10 context frames | the clip's 4 remaining true frames | 5 predicted frames
    assert Image.open(sheet).size == (10 * 66 - 2, 3 * 66 - 2)
    only = tmp_path / "only.mp4"
    result = run_cli("predict", clip, "--weights", onnx_path, "--context", 10, "--future", 7, "--only-future", "-o", only)
    assert result.returncode == 0, result.stderr
    assert probe_video(only).frame_count == 7


def test_predict_cli_short_clip_and_bad_size_are_one_line_errors(trained, tmp_path):
    _, onnx_path, _ = trained
    short = _square_clip(tmp_path / "short.mp4", frames=6)
    result = run_cli("predict", short, "--weights", onnx_path, "--context", 10, "-o", tmp_path / "o.mp4")
    assert result.returncode == 1
    assert "6 frames" in result.stderr and "--context 10" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "o.mp4").exists()
    odd = _square_clip(tmp_path / "odd.mp4", frames=12, size=62)
    result = run_cli("predict", odd, "--weights", onnx_path, "-o", tmp_path / "o.mp4")
    assert result.returncode == 1 and "multiples of 4" in result.stderr and "--size" in result.stderr
    resized = run_cli("predict", odd, "--weights", onnx_path, "--size", 32, "--future", 2, "-o", tmp_path / "o.mp4")
    assert resized.returncode == 0, resized.stderr
    assert probe_video(tmp_path / "o.mp4").width == 32


# --------------------------------------------------------------------------- evaluation


def test_baselines_and_errors_have_the_literature_scale():
    context = np.zeros((1, 2, 64, 64))
    context[0, 1, :8, :8] = 1.0  # the last frame: 64 white pixels
    truth = np.zeros((1, 3, 64, 64))
    predictions = baseline_predictions(context, 3)
    squared, absolute = frame_errors(predictions["copy_last"], truth)
    assert squared.shape == (1, 3) and np.all(squared == 64) and np.all(absolute == 64)  # sums, not means
    assert np.all(predictions["context_mean"][0, :, 0, 0] == 0.5) and not predictions["blank"].any()


def test_evaluate_reports_model_and_baselines_per_horizon(trained, tmp_path):
    _, onnx_path, mnist_file = trained
    results = evaluate_mmnist(onnx_path, sequences=3, mnist=mnist_file, context=3, future=3, device="cpu")
    assert set(results["methods"]) == {"model", "copy_last", "blank", "context_mean"}
    truth = mmnist.fixed_test_set(mmnist.load_digits(mnist_file), 3, length=6)[:, 3:].astype(np.float64) / 255
    blank = results["methods"]["blank"]
    assert blank["mse"] == pytest.approx((truth**2).sum(axis=(2, 3)).mean(), abs=0.01)
    assert len(blank["mse_per_horizon"]) == 3 and 0 <= results["methods"]["model"]["ssim"] <= 1
    assert results["floor_mse"] == pytest.approx(0.7 * results["methods"][results["best_baseline"]]["mse"], abs=0.01)


def test_predict_mmnist_writes_sheets_and_gifs(trained, tmp_path):
    from PIL import Image

    from imgan_video.infer import predict_mmnist

    _, onnx_path, mnist_file = trained
    written = predict_mmnist(2, tmp_path / "mm", mnist=mnist_file, context=3, future=4, weights=onnx_path, device="cpu")
    assert sorted(path.name for path in written) == ["mmnist-0000.gif", "mmnist-0000.png", "mmnist-0001.gif",
                                                      "mmnist-0001.png"]
    assert Image.open(tmp_path / "mm" / "mmnist-0000.png").size == (4 * 66 - 2, 3 * 66 - 2)
    assert Image.open(tmp_path / "mm" / "mmnist-0001.gif").n_frames == 3 + 4


def _audio_rms(path: Path, rate: int = 8000) -> np.ndarray:
    """The RMS loudness of each 0.1 s of the file's audio (mono, decoded by ffmpeg)."""
    import subprocess

    from imgan.io.video import find_ffmpeg

    pcm = subprocess.run([find_ffmpeg(), "-v", "error", "-i", str(path), "-vn", "-ac", "1", "-ar", str(rate), "-f", "s16le",
                          "-"], check=True, capture_output=True).stdout
    samples = np.frombuffer(pcm, np.int16).astype(np.float64)
    chunk = rate // 10
    return np.sqrt(np.mean(samples[: len(samples) // chunk * chunk].reshape(-1, chunk) ** 2, axis=1))


def test_predict_keeps_the_context_audio_and_predicted_frames_are_silent(trained, tmp_path):
    import subprocess

    from imgan.io.video import find_ffmpeg

    if find_ffmpeg() is None:
        pytest.skip("no ffmpeg binary")
    _, onnx_path, _ = trained
    silent = _square_clip(tmp_path / "square.mp4", frames=20)  # 2 s at 10 fps
    clip = tmp_path / "square-sound.mp4"
    subprocess.run([find_ffmpeg(), "-v", "error", "-i", str(silent), "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
                    "-c:v", "copy", "-c:a", "aac", "-shortest", str(clip)], check=True)
    out = tmp_path / "out.mp4"
    result = run_cli("predict", clip, "--weights", onnx_path, "--context", 10, "--future", 10, "-o", out, "--json")
    assert result.returncode == 0, result.stderr
    assert any("predicted frames are silent" in note for note in json.loads(result.stdout)["notes"])
    loudness = _audio_rms(out)
    assert probe_video(out).has_audio and len(loudness) >= 19
    assert loudness[1:9].min() > 1000 and loudness[11:19].max() < 50  # 1 s of tone under the context, then silence
