"""Inference rewrites that keep a network's outputs (to float rounding) and cut its CPU time.

- Conv2d followed by an eval-mode BatchNorm2d inside an ``nn.Sequential``: the BN is folded into the conv's
  weight and bias and replaced by Identity.
- A conv dilated by 2 along one axis only (Ocean's (2,1)/(1,2) encoders) runs as a plain conv on the two
  row/column phases of its input (:class:`PhaseSplitConv`): PyTorch's CPU path for such dilations is slow.

The result is for tracking only: its state dict no longer matches the checkpoint layout.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["fold_batchnorm", "fuse_for_inference", "undilate_asymmetric"]


def _folded(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, bias=True).to(conv.weight.device, conv.weight.dtype)
    with torch.no_grad():
        out.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(bn.running_mean)
        out.bias.copy_((bias - bn.running_mean) * scale + bn.bias.detach())
    return out


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every Conv2d → BatchNorm2d pair of consecutive ``nn.Sequential`` entries (in place)."""
    for child in module.children():
        fold_batchnorm(child)
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        for first, second in zip(names, names[1:], strict=False):
            conv, bn = module._modules[first], module._modules[second]
            if isinstance(conv, nn.Conv2d) and type(bn) is nn.BatchNorm2d and bn.track_running_stats:
                module._modules[first] = _folded(conv, bn)
                module._modules[second] = nn.Identity()
    return module


class PhaseSplitConv(nn.Module):
    """An un-padded conv dilated by 2 along one axis, run as a plain conv on the two row (or column) phases.

    Output row r of a (2,1)-dilated conv reads input rows r, r+2, r+4: for even r those are rows r/2.. of the
    even-row phase, for odd r of the odd-row phase. Same numbers, but on oneDNN's fast undilated path.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.axis = 2 if conv.dilation[0] == 2 else 3
        self.conv = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, 0, 1,
                              conv.groups, bias=conv.bias is not None).to(conv.weight.device, conv.weight.dtype)
        self.conv.load_state_dict(conv.state_dict())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        even, odd = (x[:, :, 0::2], x[:, :, 1::2]) if self.axis == 2 else (x[..., 0::2], x[..., 1::2])
        if even.shape == odd.shape:
            both = self.conv(torch.cat((even, odd), 0))
            out_even, out_odd = both[: x.shape[0]], both[x.shape[0]:]
        else:
            out_even, out_odd = self.conv(even), self.conv(odd)
        size = list(out_even.shape)
        size[self.axis] = out_even.shape[self.axis] + out_odd.shape[self.axis]
        out = out_even.new_empty(size)
        if self.axis == 2:
            out[:, :, 0::2], out[:, :, 1::2] = out_even, out_odd
        else:
            out[..., 0::2], out[..., 1::2] = out_even, out_odd
        return out


def undilate_asymmetric(module: nn.Module) -> nn.Module:
    """Replace un-padded stride-1 convs dilated by 2 along exactly one axis by :class:`PhaseSplitConv` (in place)."""
    for name, child in module.named_children():
        if (isinstance(child, nn.Conv2d) and sorted(child.dilation) == [1, 2] and child.padding == (0, 0)
                and child.stride == (1, 1)):
            setattr(module, name, PhaseSplitConv(child))
        else:
            undilate_asymmetric(child)
    return module


def fuse_for_inference(net: nn.Module) -> nn.Module:
    """Both rewrites on an eval-mode network (in place); returns it with ``fused_for_inference = True``."""
    if net.training:
        raise ValueError("fuse_for_inference needs an eval-mode network (BN running statistics are folded)")
    fold_batchnorm(net)
    undilate_asymmetric(net)
    net.fused_for_inference = True
    return net
