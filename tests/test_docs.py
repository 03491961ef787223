"""The docs name only what exists: every repository path, every ``unimm.*`` module (and
the name read from it) and every flag given to a ``tools/*.py`` command in README.md and
docs/*.md. Read statically (no imports, no subprocess but git's file list), so it is fast."""
import ast
import fnmatch
import functools
import glob
import itertools
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ['README.md'] + sorted(os.path.relpath(p, ROOT)
                              for p in glob.glob(os.path.join(ROOT, 'docs', '*.md')))
REPO_DIRS = ('unimm', 'tools', 'tests', 'docs', 'registry_configs')
# folders of what a run writes or a user provides (the docs' own examples), never the
# repository's
OUTSIDE = ('work_dirs/', 'data/', 'checkpoints/', 'runs/', 'twins/', '~', '/', '$', '.cache/')
PATH = re.compile(r'(?<![\w./~$<-])(?:(?:%s)/[\w./{},*-]*|[\w./{},*-]+\.(?:py|md|sh)(?!\w))'
                  % '|'.join(REPO_DIRS))
URL = re.compile(r'\w+://\S+')
MODULE = re.compile(r'(?<![\w./-])unimm(?:\.\w+)+')
FROM_IMPORT = re.compile(r'from\s+(unimm(?:\.\w+)*)\s+import\s+\(?([\w ,]+)')
IMPORTED = re.compile(r'\s*(\w+)(?:\s+as\s+\w+)?\s*$')
TOOL = re.compile(r'tools/(\w+)\.py\b')
FLAG = re.compile(r'(?<![\w-])--[a-z][\w-]*')
CODE_SPAN = re.compile(r'`([^`\n]+)`')
FENCE = re.compile(r'^```[^\n]*\n(.*?)^```', re.S | re.M)


@functools.lru_cache(maxsize=None)
def text(doc):
    with open(os.path.join(ROOT, doc), encoding='utf-8') as f:
        return URL.sub(' ', f.read())


@functools.lru_cache(maxsize=None)
def repo_paths():
    """Files git tracks or would track, and every folder above them."""
    out = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard'],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    files = {f for f in out.splitlines() if os.path.exists(os.path.join(ROOT, f))}
    folders = {os.path.dirname(f) for f in files}
    while True:
        parents = {os.path.dirname(d) for d in folders} - folders
        if parents <= {''}:
            return files | folders
        folders |= parents


def expand(path):
    """Shell brace expansion: ``a_{x,y}.py`` -> ``a_x.py``, ``a_y.py``."""
    parts = re.split(r'\{([^{}]*)\}', path)
    choices = [[p] if i % 2 == 0 else p.split(',') for i, p in enumerate(parts)]
    return [''.join(c) for c in itertools.product(*choices)]


def exists(path):
    """A repository path (``*`` a wildcard), relative to the root or to any folder
    (docs/, unimm/, a recipe folder...): a doc may name ``models/quantizers/vq.py`` or
    ``demo/sghc_shapes.py``."""
    path = path.rstrip('/')
    return any(fnmatch.fnmatch(p, path) or fnmatch.fnmatch(p, '*/' + path)
               for p in repo_paths())


def named_paths(doc):
    for match in PATH.finditer(text(doc)):
        path = match.group(0).rstrip('.,:;')
        if path.startswith(OUTSIDE) or '...' in path or path.endswith('.'):
            continue
        yield from expand(path)


@functools.lru_cache(maxsize=None)
def top_level_names(module_file):
    """Names a module defines or imports at top level; for classes, their members too."""
    tree = ast.parse(open(module_file, encoding='utf-8').read())
    names = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = set()
        elif isinstance(node, ast.ClassDef):
            names[node.name] = {n.name for n in node.body if isinstance(
                n, (ast.FunctionDef, ast.AsyncFunctionDef))} | {
                t.id for n in node.body if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Name)}
        elif isinstance(node, ast.Assign):
            names.update((t.id, set()) for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(((a.asname or a.name).split('.')[0], set()) for a in node.names)
    return names


def module_file(parts):
    base = os.path.join(ROOT, *parts)
    for candidate in (base + '.py', os.path.join(base, '__init__.py')):
        if os.path.isfile(candidate):
            return candidate
    return None


def resolves(dotted):
    """``unimm.a.b`` is a module of the package, or ``unimm.a.Name`` / ``unimm.a.Cls.member``
    a name defined or imported at the top of one (one class member deep)."""
    parts = dotted.split('.')
    for i in range(len(parts), 0, -1):
        found = module_file(parts[:i])
        if found:
            break
    rest = parts[i:]
    if not rest:
        return True
    if module_file(parts[:i] + rest[:1]):  # a submodule, imported by name
        return resolves('.'.join(parts[:i + 1] + rest[1:]))
    names = top_level_names(found)
    return rest[0] in names and (len(rest) == 1 or rest[1] in names[rest[0]] or
                                 not names[rest[0]])


def named_modules(doc):
    body = text(doc)
    yield from (m.group(0) for m in MODULE.finditer(body))
    for module, imported in FROM_IMPORT.findall(body):
        for name in imported.split(','):
            if IMPORTED.match(name):
                yield f'{module}.{IMPORTED.match(name).group(1)}'


@functools.lru_cache(maxsize=None)
def tool_flags(tool):
    """Every ``--flag`` a tool's argparse parsers accept (subcommands' included)."""
    tree = ast.parse(open(os.path.join(ROOT, 'tools', tool + '.py'), encoding='utf-8').read())
    return {arg.value for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, 'attr', None) == 'add_argument' for arg in node.args
            if isinstance(arg, ast.Constant) and str(arg.value).startswith('--')}


def commands(doc):
    """(tool, the command line after tools/<tool>.py) for each command a doc shows, in a
    code span or a (backslash-continued) line of a code block, without its comment."""
    body = text(doc)
    lines = [span for span in CODE_SPAN.findall(FENCE.sub('', body))]
    for block in FENCE.findall(body):
        lines += block.replace('\\\n', ' ').splitlines()
    for line in lines:
        for match in TOOL.finditer(line):
            rest = re.split(r'\s#|\s\|\s|&&|;|>', line[match.end():])[0]
            yield match.group(1), rest


@pytest.mark.parametrize('doc', DOCS)
def test_docs_name_only_what_exists(doc):
    missing = sorted({p for p in named_paths(doc) if not exists(p)})
    assert not missing, f'{doc} names paths that do not exist: {missing}'
    unresolved = sorted({m for m in named_modules(doc) if not resolves(m)})
    assert not unresolved, f'{doc} names modules or names that do not exist: {unresolved}'
    bad = sorted({f'tools/{tool}.py {flag}' for tool, rest in commands(doc)
                  for flag in FLAG.findall(rest)
                  if os.path.isfile(os.path.join(ROOT, 'tools', tool + '.py'))
                  and flag not in tool_flags(tool) | {'--help'}})
    assert not bad, f'{doc} gives tools flags they do not take: {bad}'


def test_the_check_catches_what_is_wrong():
    assert exists('models/quantizers/vq.py') and exists('registry_configs/_base_/')
    assert not exists('DESIGN.md') and not exists('models/vq.py')
    assert exists('llava_vicuna7b_*_pretrain.py') and not exists('llava_*_pretrain.sh')
    assert expand('a_{x,y}/{1,2}.py') == ['a_x/1.py', 'a_x/2.py', 'a_y/1.py', 'a_y/2.py']
    assert resolves('unimm.inference.CFGSampler') and resolves('unimm.models.base')
    assert resolves('unimm.models.base.PretrainedMixin.from_pretrained')
    assert not resolves('unimm.inference.Sampler') and not resolves('unimm.nowhere')
    assert not resolves('unimm.models.base.PretrainedMixin.nothing')
    assert '--work-dir' in tool_flags('train') and '--resume' in tool_flags('train')
