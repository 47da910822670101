"""The matmul DFT that lets Fourier (FFC) blocks export to ONNX: equal to torch.fft, and dynamic in size once exported."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from imgan.train.spectral import irfft2, rfft2  # noqa: E402


@pytest.mark.parametrize("height,width", [(8, 8), (7, 9), (16, 11), (1, 2)])
def test_rfft2_and_irfft2_equal_torch_fft_ortho(height, width):
    x = torch.randn(2, 3, height, width, dtype=torch.float64, generator=torch.Generator().manual_seed(width))
    spectrum = torch.fft.rfftn(x, dim=(-2, -1), norm="ortho")
    re, im = rfft2(x)
    assert re.shape == spectrum.shape
    assert torch.allclose(re, spectrum.real, atol=1e-12) and torch.allclose(im, spectrum.imag, atol=1e-12)
    other = torch.randn(spectrum.shape, dtype=torch.complex128, generator=torch.Generator().manual_seed(height))
    expected = torch.fft.irfftn(other, s=(height, width), dim=(-2, -1), norm="ortho")  # ignores DC/Nyquist imag
    assert torch.allclose(irfft2(other.real, other.imag, width), expected, atol=1e-12)
    assert torch.allclose(irfft2(re, im, width), x, atol=1e-12)


def test_a_spectral_filter_exports_with_a_dynamic_size(tmp_path):
    import onnxruntime as ort

    from imgan.train.export import export_onnx

    class SpectralFilter(torch.nn.Module):  # a Fourier unit's skeleton: FFT, a 1x1 conv on (re, im), inverse
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.mix = torch.nn.Conv2d(2, 2, 1)

        def forward(self, x):
            re, im = rfft2(x)
            mixed = self.mix(torch.cat((re, im), dim=1))
            return irfft2(mixed[:, :1], mixed[:, 1:], x.shape[-1])

    net = SpectralFilter().eval()
    report = export_onnx(net, (torch.rand(1, 1, 12, 16),), tmp_path / "filter.onnx", input_names=("input",),
                         output_names=("output",), parity_inputs=[(torch.rand(1, 1, 9, 7),)])
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(0).random((1, 1, 20, 13), dtype=np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(image)).numpy()
    assert np.abs(session.run(None, {"input": image})[0] - expected).max() < 1e-4
