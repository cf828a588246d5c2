import pytest
import torch
from torch import nn

torch.set_num_threads(2)


def tiny_vit(**kw):
    """A 1-block ViT with LayerNorm, GELU and attention: ~700 parameters."""
    from vitprobe.models import create_model

    cfg = dict(num_classes=3, in_chans=1, img_size=8, patch_size=4, embed_dim=8, depth=1,
               heads=2, mlp_ratio=2.0)
    cfg.update(kw)
    name = cfg.pop("name", "vit-ti")
    return create_model(name, **cfg)


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        x = torch.tanh(self.conv2(x))
        return self.head(x.mean((2, 3)))


@pytest.fixture
def vit64():
    torch.manual_seed(0)
    return tiny_vit().double().eval()


@pytest.fixture
def cnn64():
    torch.manual_seed(0)
    m = TinyCNN().double()
    # non-trivial running statistics so eval and train mode differ
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.randn(16, 1, 8, 8, dtype=torch.float64) * 2 + 0.5)
    return m.eval()


def batch(n=12, seed=0, dtype=torch.float64, classes=3, size=8):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, size, size, generator=g, dtype=dtype)
    y = torch.randint(0, classes, (n,), generator=g)
    return x, y


def fd_hvp(model, loss_fn, x, y, v, eps):
    """Central finite difference of the gradient along ``v`` (a dict by parameter name), on a
    copy of ``model``: (g(θ + εv) − g(θ − εv)) / 2ε, flattened in parameter order."""
    import copy

    m = copy.deepcopy(model)
    base = dict(model.named_parameters())

    def grad_at(sign):
        with torch.no_grad():
            for n, p in m.named_parameters():
                p.copy_(base[n] + sign * eps * v[n])
        m.zero_grad()
        loss_fn(m(x), y).backward()
        return torch.cat([p.grad.reshape(-1) for p in m.parameters()])

    return (grad_at(1) - grad_at(-1)) / (2 * eps)
