"""The package's layers point one way: models never import datasets, the engine, the
evaluators, the APIs or the app (they may use unimm.inference's sampler); evaluation never
imports the training runner; nothing in unimm imports tools/. Read statically from every module's imports (function-level ones too).
And loading the models does not import wandb (timm would: start-up time)."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'unimm'

# package (a prefix of the importing module's name) -> modules it must not import
FORBIDDEN = {
    'unimm.models': ('unimm.datasets', 'unimm.engine', 'unimm.evaluation', 'unimm.apis',
                     'unimm.apps'),
    'unimm.evaluation': ('unimm.engine.runner', 'unimm.apis'),
    'unimm.datasets': ('unimm.engine', 'unimm.evaluation', 'unimm.apis'),
    'unimm.utils': ('unimm.models', 'unimm.datasets', 'unimm.engine', 'unimm.evaluation',
                    'unimm.apis'),
    'unimm': ('tools',),
}


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imported_modules(path):
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split('.')
            if node.level:
                base = base[:len(base) - node.level + 1]
                module = '.'.join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            yield module
            # `from unimm import datasets` imports unimm.datasets
            yield from (f'{module}.{alias.name}' for alias in node.names)


def violations(path):
    name = module_name(path)
    found = []
    for package, forbidden in FORBIDDEN.items():
        if name != package and not name.startswith(package + '.'):
            continue
        for module in imported_modules(path):
            if any(module == f or module.startswith(f + '.') for f in forbidden):
                found.append(f'{name} imports {module}')
    return found


def test_layers_point_one_way():
    found = [v for path in sorted(PACKAGE.rglob('*.py')) for v in violations(path)]
    assert not found, '\n'.join(found)


@pytest.mark.parametrize('source, bad', [
    ('from unimm.datasets.llava import LLaVADataset', True),
    ('def f():\n    from unimm.engine import runner', True),
    ('from ...engine.runner import Runner', True),
    ('from unimm import engine', True),
    ('from unimm.models.mllm.llm import load_llm', False),
])
def test_the_check_sees_every_import_form(tmp_path, monkeypatch, source, bad):
    module = PACKAGE / 'models' / 'mllm' / '_layering_probe.py'
    monkeypatch.setattr(pathlib.Path, 'read_text', lambda self: source)
    assert bool(violations(module)) == bad


def test_loading_the_models_declines_wandb_and_leaves_it_importable():
    """timm's package init (the ViT blocks) imports wandb when it is installed, about 2 s
    of every tool's start-up for a helper unimm never calls: loading unimm's models leaves
    wandb unimported, and it imports normally afterwards."""
    import os
    import subprocess
    import sys
    code = ("import importlib.util, sys; import unimm.models; "
            "assert 'wandb' not in sys.modules, sys.modules['wandb']; "
            "import timm.utils.summary; assert not hasattr(timm.utils.summary, 'wandb'); "
            "installed = importlib.util.find_spec('wandb') is not None; "
            "print(installed and __import__('wandb').__name__ == 'wandb' or not installed)")
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0 and out.stdout.strip() == 'True', out.stderr[-2000:]
