"""The web demo (unimm/apps/demo.py, tools/app.py) on tiny random models: streamed answers
end in the greedy answer, image sampling reports its progress, each kind of model gets the
tabs of what it can do, and a real headless Chromium drives the page that
`python tools/app.py CONFIG EXPORT` serves: upload an image and ask, type a prompt and get
the asked number of images, each equal to what the model samples for that seed.

The browser test needs Chromium and its driver from the system packages
(bash tools/install_browser.sh); without them it fails. UNIMM_APP_SCREENSHOTS=DIR keeps its
two screenshots in DIR (docs/images for the docs)."""
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from unimm.apps.demo import HOST, abilities, build_demo, chat_turn, draw_images
from unimm.datasets.llava import image_input
from unimm.datasets.shapes import ShapesWorld
from unimm.models.mllm.llm import load_exported
from unimm.registry import MODELS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = 'registry_configs/demo/unified_shapes.py'  # the export's config.json names its type
INSTALL = 'bash tools/install_browser.sh'
QUESTIONS = ('how many shapes are there?', 'what color is the circle?')


def build(parts, kind):
    """A tiny model of ``kind`` on the shared parts, every trainable weight moved off its
    init (a zero-initialised layer would make answers and images trivially alike)."""
    llm, tokenizer = parts
    cfg = {'unified': dict(type='UnifiedMLLM', llm=llm, image_tokenizer=tokenizer,
                           max_caption_tokens=16),
           'understanding': dict(type='UnderstandingMLLM', llm=llm, train_llm=True,
                                 vision=dict(type='TokenizerFeatures', tokenizer=tokenizer)),
           'generation': dict(type='GenerationMLLM', llm=llm, image_tokenizer=tokenizer,
                              max_caption_tokens=16)}[kind]
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope='module')
def models(tiny_unified_parts):
    return {kind: build(tiny_unified_parts, kind)
            for kind in ('unified', 'understanding', 'generation')}


@pytest.fixture(scope='module')
def export(models, tmp_path_factory):
    """The tiny unified model exported as tools/train.py exports it."""
    folder = tmp_path_factory.mktemp('app_export')
    models['unified'].save_pretrained(folder)
    return str(folder)


def scene(i, size=256):
    """A held-out shapes scene as a user would upload it (larger than the model's input)."""
    return ShapesWorld(0, size).image(100000 + i)


def greedy(model, image, question, **kw):
    return model.generate([model.single_turn(question)], image_input(image, model.image_size)[None],
                          **kw)[0]


# ------------------------------------------------------------------ the model side
@pytest.mark.parametrize('kind', ['unified', 'understanding'])
def test_streamed_answer_grows_into_the_greedy_answer(models, kind):
    model = models[kind]
    streamed_somewhere = False
    for i in range(2):
        x = image_input(scene(i), model.image_size)[None]
        for question in QUESTIONS[i:i + 1]:
            conv = model.single_turn(question)
            parts = list(model.stream_answer(conv, x, max_new_tokens=24))
            answer = model.generate([conv], x, max_new_tokens=24)[0]
            assert answer and parts[-1] == answer
            assert all(answer.startswith(p) for p in parts)  # it only grows
            streamed_somewhere |= len(parts) > 1
    assert streamed_somewhere  # answers arrived in pieces, not all at once


def test_stream_answer_raises_what_generation_raises(models):
    model = models['unified']
    two_images = torch.zeros(2, 3, model.image_size, model.image_size)
    with pytest.raises(ValueError, match='image placeholder'):
        list(model.stream_answer(model.single_turn('how many?'), two_images))


def test_chat_turns_keep_the_image_and_the_history(models):
    """Two questions about one image through the page's handler: each shown answer is the
    greedy answer to the conversation so far (the image in the first turn)."""
    model, image = models['unified'], scene(0)
    history, turns = [], []
    for question in QUESTIONS:
        *_, (history, turns) = chat_turn(model, image, question, turns, history,
                                         max_new_tokens=16)
    assert turns[0]['value'].startswith('<image>\n') and len(turns) == 4
    assert [m['role'] for m in history] == ['user', 'assistant'] * 2
    x = image_input(image, model.image_size)[None]
    assert history[1]['content'] == greedy(model, image, QUESTIONS[0], max_new_tokens=16)
    assert history[3]['content'] == model.generate([turns[:3]], x, max_new_tokens=16)[0]
    assert turns[3]['value'] == history[3]['content']
    # an empty question changes nothing
    assert list(chat_turn(model, image, '  ', turns, history)) == [(history, turns)]


def test_image_sampling_reports_every_token_position_and_draws_the_same(models):
    model = models['generation']
    calls = []
    ids = model.generate_ids(['a red circle'] * 3, seed=5, batch_size=2,
                             progress=lambda done, total: calls.append((done, total)))
    n = model.num_image_tokens
    assert calls == [(k, 2 * n) for k in range(1, 2 * n + 1)]  # two batches of n positions
    assert torch.equal(ids, model.generate_ids(['a red circle'] * 3, seed=5, batch_size=2))


def test_draw_images_gives_n_images_and_a_seed_fixes_them(models):
    model = models['unified']
    kw = dict(cfg_scale=3.0, temperature=1.0, top_k=20, top_p=0.9)
    first = draw_images(model, 'a large red circle', n=3, seed=7, **kw)
    assert len(first) == 3 and all(im.size == (32, 32) for im in first)
    again = draw_images(model, 'a large red circle', n=3, seed=7, **kw)
    other = draw_images(model, 'a large red circle', n=3, seed=8, **kw)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(first, again))
    assert not all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(first, other))


def tab_labels(demo):
    import gradio as gr
    return [block.label for block in demo.blocks.values() if isinstance(block, gr.Tab)]


def test_tabs_follow_what_the_model_can_do(models, tiny_unified_parts):
    assert tab_labels(build_demo(models['unified'])) == ['Chat', 'Text to image']
    assert tab_labels(build_demo(models['understanding'])) == ['Chat']
    assert tab_labels(build_demo(models['generation'])) == ['Text to image']
    # a generation model without its image tokenizer cannot decode images: nothing to serve
    blind = MODELS.build(dict(type='GenerationMLLM', llm=tiny_unified_parts[0],
                              num_semantic=16, sub_codes=4, num_image_tokens=16))
    assert abilities(blind) == (False, False)
    with pytest.raises(ValueError, match='neither'):
        build_demo(blind)


def test_app_serves_on_localhost_unless_told(monkeypatch):
    """`serve` (what tools/app.py calls, with these defaults) launches the page on
    127.0.0.1 without a public link unless told otherwise."""
    import unimm.apps.demo as demo

    class Page:
        def queue(self):
            return self

        def launch(self, **options):
            launched.append(options)
    launched = []
    monkeypatch.setattr(demo, 'load_exported', lambda config, checkpoint: torch.nn.Linear(1, 1))
    monkeypatch.setattr(demo, 'build_demo', lambda model, name: Page())
    demo.serve('CONFIG', 'EXPORT', device='cpu')
    demo.serve('CONFIG', 'EXPORT', host='0.0.0.0', port=8000, share=True, device='cpu')
    assert [(o['server_name'], o['server_port'], o['share']) for o in launched] == [
        (HOST, demo.PORT, False), ('0.0.0.0', 8000, True)]
    assert HOST == '127.0.0.1'


# ------------------------------------------------------------------ the page in a browser
def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def listening_addresses(port):
    """Local addresses with a listening TCP socket on ``port`` (from /proc/net/tcp)."""
    found = []
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.rsplit(':', 1)
                if state == '0A' and int(hex_port, 16) == port:  # 0A: LISTEN
                    found.append(socket.inet_ntoa(bytes.fromhex(address)[::-1])
                                 if len(address) == 8 else address)
    return found


@pytest.fixture(scope='module')
def server(export, tmp_path_factory):
    """``python tools/app.py CONFIG EXPORT --port P`` as a user starts it: (url, port)."""
    port = free_port()
    log = tmp_path_factory.mktemp('app_server') / 'server.log'
    env = dict(os.environ, GRADIO_TEMP_DIR=str(log.parent / 'gradio'),
               PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get('PYTHONPATH')) if p))
    with open(log, 'w') as out:
        proc = subprocess.Popen([sys.executable, 'tools/app.py', CONFIG, export, '--port',
                                 str(port)], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        yield proc, port, log
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_until_served(proc, port, log, timeout=120):
    url = f'http://127.0.0.1:{port}/'
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, f'tools/app.py exited:\n{log.read_text()[-3000:]}'
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return url
        except OSError:
            time.sleep(0.3)
    pytest.fail(f'tools/app.py did not serve {url} in {timeout} s:\n{log.read_text()[-3000:]}')


@pytest.fixture(scope='module')
def browser():
    """Headless Chromium through Selenium; it can reach 127.0.0.1 only."""
    chromium = shutil.which('chromium') or shutil.which('chromium-browser')
    driver = shutil.which('chromedriver')
    if not (chromium and driver):
        pytest.fail(f'the browser test needs Chromium and chromedriver from the system '
                    f'packages (found chromium={chromium}, chromedriver={driver}): {INSTALL}')
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage',
                '--window-size=1280,960', '--no-proxy-server',
                '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'):
        options.add_argument(arg)
    session = webdriver.Chrome(options=options, service=Service(driver))
    yield session
    session.quit()


def screenshot(browser, tmp_path, name):
    browser.execute_script('window.scrollTo(0, 0)')
    path = tmp_path / name
    browser.save_screenshot(str(path))
    keep = os.environ.get('UNIMM_APP_SCREENSHOTS')
    if keep:
        os.makedirs(keep, exist_ok=True)
        shutil.copy(path, os.path.join(keep, name))


def shown_images(browser, n):
    """The gallery's images as arrays, once it shows ``n`` of them."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    imgs = WebDriverWait(browser, 30).until(
        lambda b: (found := b.find_elements(By.CSS_SELECTOR, '#gallery img'))
        and len(found) == n and found)
    arrays = []
    for img in imgs:
        with urllib.request.urlopen(img.get_attribute('src'), timeout=10) as r:
            arrays.append(np.asarray(Image.open(io.BytesIO(r.read())).convert('RGB')))
    return arrays


def set_number(browser, selector, value):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    field = browser.find_element(By.CSS_SELECTOR, selector)
    field.send_keys(Keys.CONTROL, 'a')
    field.send_keys(str(value), Keys.TAB)
    assert field.get_attribute('value') == str(value)


@pytest.mark.slow
def test_page_in_a_headless_browser(server, browser, export, tmp_path):
    """Open the page tools/app.py serves, upload an image and ask: the answer shown is the
    model's greedy answer; type a prompt: the page shows the asked number of images, each
    the one the model samples for that seed (drawn in another process: same seed, same
    images), and another seed and count give those. Screenshots of both tabs."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    proc, port, log = server
    model = load_exported(CONFIG, export).eval()  # what the page should show
    image_path = tmp_path / 'scene.png'
    scene(0).save(image_path)
    question, prompt = QUESTIONS[0], 'a large red circle and a small blue square'
    answer = greedy(model, Image.open(image_path), question, max_new_tokens=24)
    expected = {(n, seed): [np.asarray(im) for im in draw_images(model, prompt, n, seed=seed)]
                for n, seed in ((4, 7), (2, 8))}

    url = wait_until_served(proc, port, log)
    assert listening_addresses(port) == ['127.0.0.1']  # local only by default
    browser.get(url)
    wait = WebDriverWait(browser, 30)
    tabs = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, '[role=tab]'))
    assert [t.text for t in tabs] == ['Chat', 'Text to image']

    # chat: upload, ask, read the streamed answer when it stops growing at the greedy one
    browser.find_element(By.CSS_SELECTOR, '#chat-image input[type=file]').send_keys(
        str(image_path))
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, '#chat-image img'))
    set_number(browser, '#max-new-tokens input[type=number]', 24)
    browser.find_element(By.CSS_SELECTOR, '#question textarea').send_keys(question)
    browser.find_element(By.ID, 'send').click()
    prefix = "bot's message: "
    seen = []

    def bot_says(b):
        bots = b.find_elements(By.CSS_SELECTOR, '#chatbot [data-testid=bot]')
        if bots:
            seen.append(bots[-1].get_attribute('aria-label').removeprefix(prefix))
        return bool(seen) and seen[-1] == answer

    try:
        wait.until(bot_says)
    except TimeoutException:
        pytest.fail(f'the page shows {seen[-1:]!r}, the greedy answer is {answer!r}')
    assert all(answer.startswith(s) for s in seen)  # streamed text only grows into it
    user = browser.find_element(By.CSS_SELECTOR, '#chatbot [data-testid=user]')
    assert user.get_attribute('aria-label').removeprefix("user's message: ") == question
    screenshot(browser, tmp_path, 'app_chat.png')

    # text to image: prompt, number of images and seed; the images the model samples
    next(t for t in tabs if t.text == 'Text to image').click()
    wait.until(lambda b: b.find_element(By.ID, 'prompt').is_displayed())
    browser.find_element(By.CSS_SELECTOR, '#prompt textarea').send_keys(prompt)
    for n, seed in ((4, 7), (2, 8)):
        set_number(browser, '#num-images input[type=number]', n)
        set_number(browser, '#seed input', seed)
        browser.find_element(By.ID, 'generate').click()
        shown = shown_images(browser, n)
        assert len(shown) == n
        assert all(np.array_equal(a, b) for a, b in zip(shown, expected[n, seed])), (n, seed)
        if seed == 7:
            screenshot(browser, tmp_path, 'app_text_to_image.png')
    assert not np.array_equal(expected[4, 7][0], expected[2, 8][0])
