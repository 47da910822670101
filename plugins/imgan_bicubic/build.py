"""Build weights/bicubic-x2.onnx: python -m imgan_bicubic.build [OUT_DIR]

A hand-built ONNX graph (Resize, cubic a=-0.75 like PyTorch and OpenCV, half-pixel centres, then
a clip to [0, 1]); no training involved. Writes the model card beside it.
"""
from __future__ import annotations

import sys
from pathlib import Path


def build_model(scale: int = 2):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes=[
            helper.make_node("Resize", ["input", "", "scales"], ["resized"], mode="cubic", cubic_coeff_a=-0.75,
                             coordinate_transformation_mode="half_pixel"),
            helper.make_node("Clip", ["resized", "low", "high"], ["output"]),
        ],
        name=f"bicubic_x{scale}",
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        outputs=[helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 3, "out_height", "out_width"])],
        initializer=[
            helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, float(scale), float(scale)]),
            helper.make_tensor("low", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor("high", TensorProto.FLOAT, [], [1.0]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="imgan")
    model.ir_version = 8  # what ONNX Runtime releases of the last years all read (the onnx package writes newer)
    onnx.checker.check_model(model)
    return model


def main(out_dir: Path) -> Path:
    import onnx

    from imgan.cards import ModelCard, Provenance, Running, card_path_for, write_card
    from imgan.weights import sha256_of

    path = out_dir / "bicubic-x2.onnx"
    onnx.save(build_model(2), path)
    write_card(ModelCard(task="bicubic", name="x2", file=path.name, sha256=sha256_of(path), licence="MIT",
                         description="×2 bicubic interpolation (a=-0.75), a baseline",
                         running=Running(scale=2, tile_overlap=4),
                         provenance=Provenance(recipe={"method": "ONNX Resize cubic, a=-0.75, half_pixel, clip [0,1]"})),
               card_path_for(path))
    return path


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "weights"))
