"""--vqgan-device and --image-batch-size: parsed by the CLI, resolved by JobOptions at graph construction
(auto counts as CPU: batch 1; an explicit cuda device: batch 32), the device resolved where the worker loads
the model; the job's codes are those of the VQGAN itself, and do not depend on which images share a batch."""

import numpy as np
import pytest

from image_tokenizer import crop, load_vqgan, resolve_device, to_pixels
from image_tokenizer.train_small_vqgan import skimage_rgb
from pipeline.cli import run_parser
from pipeline.graph import JobOptions
from pipeline.images import CPU_BATCH_SIZE, CUDA_BATCH_SIZE, VQGANHandle, encode_images


def parse(*argv: str):
    args, beam_args = run_parser().parse_known_args(["--output", "out", *argv])
    return args, beam_args


def test_cli_parses_device_and_batch_size():
    args, _ = parse()
    assert args.vqgan_device is None and args.image_batch_size is None  # JobOptions' default: auto
    for device in ("auto", "cpu", "cuda", "cuda:3"):
        assert parse("--vqgan-device", device)[0].vqgan_device == device
    assert parse("--image-batch-size", "auto")[0].image_batch_size is None
    assert parse("--image-batch-size", "4")[0].image_batch_size == 4
    args, beam_args = parse("--vqgan-device=cuda", "--runner=DirectRunner")
    assert args.vqgan_device == "cuda" and beam_args == ["--runner=DirectRunner"]


@pytest.mark.parametrize(
    "argv",
    [
        ("--vqgan-device", "gpu"),
        ("--vqgan-device", "cuda:"),
        ("--vqgan-device", "mps"),
        ("--image-batch-size", "0"),
        ("--image-batch-size", "big"),
    ],
)
def test_cli_refuses_bad_values(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(*argv)
    assert exit_info.value.code == 2
    assert argv[0] in capsys.readouterr().err


def job(**options) -> JobOptions:
    return JobOptions(inputs=("in/*.warc.gz",), output="out", **options)


def test_job_options_resolve_the_batch_size_from_the_device():
    assert CPU_BATCH_SIZE == 1 and CUDA_BATCH_SIZE == 32
    assert job().vqgan_device == "auto" and job().image_batch_size == CPU_BATCH_SIZE
    assert job(vqgan_device="cpu").image_batch_size == CPU_BATCH_SIZE
    assert job(vqgan_device="cuda").image_batch_size == CUDA_BATCH_SIZE
    assert job(vqgan_device="cuda:1").image_batch_size == CUDA_BATCH_SIZE
    assert job(vqgan_device="cuda", image_batch_size=4).image_batch_size == 4
    assert job(vqgan_device="cpu", image_batch_size=8).image_batch_size == 8
    options = job(vqgan_device="cuda").manifest_options()  # the manifest records what was used
    assert options["vqgan_device"] == "cuda" and options["image_batch_size"] == CUDA_BATCH_SIZE
    assert job(image_batch_size=None) == job(image_batch_size=CPU_BATCH_SIZE)


@pytest.mark.parametrize("options", [{"vqgan_device": "gpu"}, {"image_batch_size": 0}])
def test_job_options_refuse_bad_values(options):
    with pytest.raises(ValueError):
        job(**options)


@pytest.fixture(scope="module")
def prepared() -> list[tuple[str, np.ndarray]]:
    images = [skimage_rgb(name)[0] for name in ("astronaut", "rocket", "coffee")]
    urls = [f"https://img.example/{i}.jpg" for i in range(6)]
    return [(url, crop(images[i % len(images)], url)) for i, url in enumerate(urls)]


def encode(model, items, batch_size: int) -> list[tuple[str, str]]:
    return list(encode_images(items, model, batch_size))


def code_matrix(pairs: list[tuple[str, str]]) -> np.ndarray:
    return np.array([codes.split() for _, codes in pairs], dtype=np.int64)


def test_handle_resolves_the_device_on_load_and_encodes_like_the_vqgan(prepared):
    assert VQGANHandle(device="auto").model().device.type == resolve_device("auto")
    cpu_model = VQGANHandle(device="cpu").model()
    assert cpu_model.device.type == "cpu" and VQGANHandle(device="cpu").model() is cpu_model  # once a process
    one_by_one = encode(cpu_model, prepared, 1)
    assert [url for url, _ in one_by_one] == [url for url, _ in prepared]
    direct = np.concatenate([load_vqgan().encode(to_pixels(pixels)[None]) for _, pixels in prepared])
    np.testing.assert_array_equal(code_matrix(one_by_one), direct)
    # another batch shape changes float32 rounding in the encoder: at most a rare near-tie code may differ
    together = code_matrix(encode(cpu_model, prepared, len(prepared)))
    assert (together != direct).sum() <= direct.size // 1000
    with pytest.raises(ValueError):
        VQGANHandle(device="gpu")


def test_codes_do_not_depend_on_batch_companions_order_or_padding(prepared):
    """Batches always have the job's shape (the last one zero-padded), so an image gets the same codes
    whichever images share its batch and wherever it sits: a runner's grouping cannot change a byte."""
    model = VQGANHandle(device="cpu").model()
    reference = dict(encode(model, prepared, 4))
    assert len(reference) == len(prepared)
    for order in ([5, 4, 3, 2, 1, 0], [2, 0, 4], [1], [3, 5, 0, 1, 2]):
        items = [prepared[i] for i in order]
        assert dict(encode(model, items, 4)) == {url: reference[url] for url, _ in items}


@pytest.mark.skipif(resolve_device("auto") != "cuda", reason="needs a CUDA GPU")
def test_handle_on_cuda(prepared):
    """On a GPU: the model lands there, re-encoding gives the same codes (reruns give the same bytes), codes
    do not depend on batch companions, and they agree with the CPU's for nearly all positions (CUDA kernels
    may break rare near-ties otherwise)."""
    model = VQGANHandle(device="cuda").model()
    assert model.device.type == "cuda"
    first = encode(model, prepared, CUDA_BATCH_SIZE)
    assert encode(model, prepared, CUDA_BATCH_SIZE) == first
    assert dict(encode(model, prepared[::-1][:3], CUDA_BATCH_SIZE)) == dict(first[::-1][:3])
    on_cpu = encode(VQGANHandle(device="cpu").model(), prepared, CPU_BATCH_SIZE)
    assert (code_matrix(first) == code_matrix(on_cpu)).mean() > 0.99
