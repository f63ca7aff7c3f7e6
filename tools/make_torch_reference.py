"""Write tests/data/torch_rnn_reference.npz: PyTorch's numbers for small RNN models.

Run from the repository root, either

    make torch-reference

or

    .venv/bin/pip install torch==2.13.0 && .venv/bin/python tools/make_torch_reference.py

PyTorch is needed only here; the tests read the .npz and never import it.

Each case is a ``torch.nn.RNN`` followed by a ``torch.nn.Linear`` readout applied to every
step (nn.RNNModel with mode="many_to_many"), in float64 from a fixed seed. The loss is
L = Σ_t L_t with L_t the mean cross-entropy over the batch (integer targets) or the sum of
squared errors. For case ``c`` the file holds:

    c/config            JSON: sizes, options, loss, whether h0 is given
    c/state/<name>      PyTorch's state dict (``rnn.weight_ih_l0`` ..., ``readout.weight`` ...)
    c/input, c/h0       the input, in PyTorch's layout (batch first if the case says so), and h0
    c/target            integer classes or float targets, in the layout of the readout output
    c/out, c/h_n        the RNN's output (top layer's states) and last states
    c/y, c/loss         the readout output and the loss
    c/grad/<name>       dL/d(parameter), under the state dict's names
    c/grad/input        dL/d(input)  (and c/grad/h0 when h0 is given)

The archive is written with fixed timestamps, so running this twice on one machine gives
identical bytes. On another processor PyTorch's kernels may round differently: run on an
Intel Xeon (family 6, model 167) on 2026-12-04, 68 of the 143 arrays of the file made on
2026-11-23 on another machine differed from it, by at most 1.8e-15 (gradients of magnitude
about 8), far inside the tests' 1e-12. So rewrite the file when the cases change, not to
follow a machine.
"""

from __future__ import annotations

import argparse
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "torch_rnn_reference.npz"
SEED = 1234

# T <= 5, batch <= 3, input <= 4, hidden <= 5, output <= 3.
CASES = {
    "one_layer_tanh_ce": dict(num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                              T=3, batch=2, input_size=2, hidden_size=3, output_size=2, loss="cross_entropy",
                              h0=True),
    "two_layers_relu_batch_first_sse": dict(num_layers=2, nonlinearity="relu", bias=True, batch_first=True,
                                            T=4, batch=3, input_size=3, hidden_size=4, output_size=2, loss="sse",
                                            h0=True),
    "three_layers_tanh_no_bias_ce": dict(num_layers=3, nonlinearity="tanh", bias=False, batch_first=False,
                                         T=5, batch=2, input_size=4, hidden_size=5, output_size=3,
                                         loss="cross_entropy", h0=True),
    "two_layers_tanh_no_h0_sse": dict(num_layers=2, nonlinearity="tanh", bias=True, batch_first=False,
                                      T=5, batch=3, input_size=4, hidden_size=5, output_size=3, loss="sse",
                                      h0=False),
    "three_layers_relu_batch_first_ce": dict(num_layers=3, nonlinearity="relu", bias=True, batch_first=True,
                                             T=4, batch=3, input_size=3, hidden_size=4, output_size=3,
                                             loss="cross_entropy", h0=True),
}


class RNNWithReadout(torch.nn.Module):
    """PyTorch's counterpart of nn.RNNModel(mode="many_to_many"): attributes ``rnn`` and ``readout``."""

    def __init__(self, c: dict):
        super().__init__()
        self.rnn = torch.nn.RNN(c["input_size"], c["hidden_size"], num_layers=c["num_layers"],
                                nonlinearity=c["nonlinearity"], bias=c["bias"], batch_first=c["batch_first"])
        self.readout = torch.nn.Linear(c["hidden_size"], c["output_size"], bias=c["bias"])

    def forward(self, x, h0=None):
        out, h_n = self.rnn(x, h0)
        return out, h_n, self.readout(out)


def run_case(index: int, c: dict) -> dict:
    """Every array of one case, by key (without the case prefix)."""
    torch.manual_seed(SEED + index)
    model = RNNWithReadout(c).double()
    T, m = c["T"], c["batch"]
    seq = (m, T) if c["batch_first"] else (T, m)
    x = torch.randn(*seq, c["input_size"], dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(c["num_layers"], m, c["hidden_size"], dtype=torch.float64, requires_grad=True) if c["h0"] else None
    if c["loss"] == "cross_entropy":
        target = torch.randint(0, c["output_size"], seq)
    else:
        target = torch.randn(*seq, c["output_size"], dtype=torch.float64)

    out, h_n, y = model(x, h0)
    time_axis = 1 if c["batch_first"] else 0
    if c["loss"] == "cross_entropy":
        loss = sum(torch.nn.functional.cross_entropy(y.select(time_axis, t), target.select(time_axis, t))
                   for t in range(T))
    else:
        loss = ((y - target) ** 2).sum()
    loss.backward()

    arrays = {"config": np.array(json.dumps(c, sort_keys=True))}
    arrays.update({f"state/{k}": v.detach().numpy() for k, v in model.state_dict().items()})
    arrays["input"] = x.detach().numpy()
    if h0 is not None:
        arrays["h0"] = h0.detach().numpy()
    arrays["target"] = target.numpy()
    arrays.update(out=out.detach().numpy(), h_n=h_n.detach().numpy(), y=y.detach().numpy(),
                  loss=loss.detach().numpy())
    arrays.update({f"grad/{k}": p.grad.numpy() for k, p in model.named_parameters()})
    arrays["grad/input"] = x.grad.numpy()
    if h0 is not None:
        arrays["grad/h0"] = h0.grad.numpy()
    return arrays


def write_npz(path: Path, arrays: dict) -> None:
    """Like np.savez_compressed, but with a fixed timestamp on every member (reproducible bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write (default {OUT})")
    args = parser.parse_args()
    torch.use_deterministic_algorithms(True)
    arrays = {"index": np.array(json.dumps({"torch": torch.__version__, "cases": list(CASES)}))}
    for i, (name, c) in enumerate(CASES.items()):
        arrays.update({f"{name}/{k}": v for k, v in run_case(i, c).items()})
    write_npz(args.out, arrays)
    print(f"wrote {len(CASES)} cases, {len(arrays)} arrays, {args.out.stat().st_size} bytes to {args.out}")


if __name__ == "__main__":
    main()
