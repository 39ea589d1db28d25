"""``--device``: chips are the same on any device; GPU tests run only where CUDA is.

Faults, device-to-device gains and programming noise are drawn from CPU generators and
then moved to the chip's device, so a chip seed gives the same chip on a CPU and on a GPU
(checked here on the CPU by the generators' device, and bit for bit by the ``gpu``
tests).  Read noise during inference is drawn on the activations' device.
"""

import pytest
import torch
from torch import nn

import memsim
import memsim.layers as layers
from memsim.quantization import multiplicative_noise

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def test_chip_draws_come_from_cpu_generators(monkeypatch):
    made = []
    original = layers._generator

    def recording(seed, device="cpu"):
        gen = original(seed, device)
        made.append(str(gen.device))
        return gen

    monkeypatch.setattr(layers, "_generator", recording)
    chip = memsim.convert(_mlp(), "rram_1t1r_faulty_chen2015", seed=3, chip_seed=4)
    assert made, "convert drew no chip randomness"
    assert set(made) == {"cpu"}  # faults, gains, programming noise
    made.clear()
    memsim.program(chip, {k: v for k, v in _mlp().state_dict().items() if "weight" in k}, seed=5)
    assert made and set(made) == {"cpu"}


def test_qat_noise_is_drawn_on_the_generator_device():
    w = torch.linspace(-1, 1, 50)
    a = multiplicative_noise(w, 0.1, torch.Generator().manual_seed(1))
    eps = torch.randn(50, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, w * (1 + 0.1 * eps), rtol=0, atol=0)


def test_dataset_to_moves_images_and_labels():
    from models.data import load_dataset

    train, _ = load_dataset("digits")
    assert train.to("cpu") is train
    moved = train.to(torch.device("meta"))
    assert moved.images.device.type == "meta" and moved.labels.device.type == "meta"
    assert moved.name == train.name and moved.classes == train.classes
    assert train.images.device.type == "cpu"  # the original is untouched


def test_device_flag_reaches_the_commands_that_run_models(capsys):
    from lab.cli import _leaf_parsers, build_parser, main

    parser = build_parser()
    wired = set()
    for leaf in _leaf_parsers(parser):
        if leaf.get_default("supports_device"):
            wired.add(leaf.prog.removeprefix("memsim "))
    assert wired == {
        "train-baseline",
        "evaluate",
        "ga",
        "demo",
        "reproduce table1",
        "sweep figures",
        "sweep grid",
        "compare",
    }
    # without CUDA, asking for it is refused with a clear message before any work
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            main(["evaluate", "x.pt", "--profile", "ideal", "--device", "cuda"])
        assert "CUDA is not available" in capsys.readouterr().err


@pytest.mark.gpu
@cuda
def test_same_chip_on_cpu_and_cuda():
    model = _mlp()
    cpu = memsim.convert(model, "rram_1t1r_faulty_chen2015", seed=3, chip_seed=4)
    gpu = memsim.convert(model.cuda(), "rram_1t1r_faulty_chen2015", seed=3, chip_seed=4)
    for (name, a), (_, b) in zip(cpu.named_buffers(), gpu.named_buffers()):
        if name.endswith(("g_prog", "fault", "gain")):
            assert torch.equal(a, b.cpu()), name
    x = torch.randn(256, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ya, yb = cpu.eval()(x), gpu.eval()(x.cuda()).cpu()
    # read noise streams differ by device; the programmed chip does not
    assert (ya.argmax(1) == yb.argmax(1)).float().mean() > 0.9


@pytest.mark.gpu
@cuda
def test_qat_noise_same_on_cuda():
    w = torch.linspace(-1, 1, 50)
    a = multiplicative_noise(w, 0.1, torch.Generator().manual_seed(1))
    b = multiplicative_noise(w.cuda(), 0.1, torch.Generator().manual_seed(1))
    assert b.device.type == "cuda" and torch.equal(a, b.cpu())


def _digits_tensors():
    from models.data import load_dataset

    train, test = load_dataset("digits")
    return test.images[:300], test.labels[:300]


@pytest.mark.gpu
@cuda
def test_compare_runs_memsims_chip_on_cuda_with_the_same_draws():
    pytest.importorskip("aihwkit")
    from memsim.backends.compare import compare

    x, y = _digits_tensors()
    model = _mlp()
    kw = dict(drift_times=[3600.0], draws=2, batch_size=300, seed=1, verbose=False)
    cpu = compare(model, "rram_1t1r_yao2020", x, y, **kw)
    gpu = compare(model, "rram_1t1r_yao2020", x, y, device="cuda", **kw)
    a, b = cpu["times"][0]["memsim"]["acc"], gpu["times"][0]["memsim"]["acc"]
    # the same programmed chips; only the read noise of inference differs by device
    assert all(abs(u - v) < 3.0 for u, v in zip(a, b)), (a, b)
    assert cpu["times"][0]["aihwkit"]["acc"] == gpu["times"][0]["aihwkit"]["acc"]
