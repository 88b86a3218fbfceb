"""resolve_device: "auto" follows what torch sees in this process; explicit devices are checked, and asking
for CUDA where there is none is an error rather than a silent fall-back to the CPU."""

import pytest
import torch

from image_tokenizer import resolve_device

HAS_CUDA = torch.cuda.is_available()


def test_auto_follows_cuda_availability():
    assert resolve_device("auto") == ("cuda" if HAS_CUDA else "cpu")
    assert resolve_device() == resolve_device("auto")


def test_cpu_is_returned_unchanged():
    assert resolve_device("cpu") == "cpu"


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "", "mps", "meta"])
def test_unknown_or_unsupported_devices_are_value_errors(device):
    with pytest.raises(ValueError):
        resolve_device(device)


@pytest.mark.skipif(HAS_CUDA, reason="checks the error on a machine without a CUDA GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_raises(device):
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        resolve_device(device)


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_cuda_devices_when_present():
    assert resolve_device("cuda") == "cuda"
    assert resolve_device("cuda:0") == "cuda:0"
    with pytest.raises(RuntimeError, match="GPU"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
