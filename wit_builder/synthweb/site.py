"""The synthetic website, written to disk as static files, and its ground truth.

The site has a home page, section pages and article pages that link to each other (every page is
reachable breadth-first from `/`). One section, `/private/`, is disallowed by robots.txt yet linked,
so a crawler that ignores robots.txt is caught. Article pages carry pictures in every markup a real
crawler must handle (`src` absolute, root-relative, `../` and same-directory relative, `srcset`
with several candidates, lazy `data-src`, `<figure>`/`<figcaption>`, `title` without `alt`, pages
with a `<base href>`) and the decoys it must skip (no alt, file-name alt, `data:` URIs, 1x1
tracking pixels, non-http links, a link to a missing page, an external host). Some pages are in
French, German or Spanish, with captions in those languages.

Origins: absolute URLs need `http://HOST:PORT`, known only when serving (port 0 = any free port),
so pages are written with the placeholder origin `PLACEHOLDER_ORIGIN` (the reserved `.invalid`
domain, so the files still parse as HTML with valid URLs) and the server substitutes the origin of
each request. The WARC and the pool are recordings, so they carry one fixed origin: generate uses
`config.recorded_origin`, and `warc.record_site` rewrites both for the origin a crawl really used.

`site_truth.json` lists every page (path, file, language, `<base href>`, hrefs as written and the
site paths they lead to) and every <img> occurrence (`url` as written, `path` on the site, `text`
the caption, `scene`, `form`, `page`, `lang`, `decoy` (None or why), `robots`, size and sha256),
so later stages can check what they extract against it. Like any web, some captioned pictures fail to download: missing (404), HTML
at a .jpg URL, a truncated JPEG, a redirect, a redirect loop; and some are served with
`X-Robots-Tag: noai`. Each row's `download` says what a downloader should report (DESIGN.md's
statuses). Special answers are listed in `.responses.json`, which the server reads, never serves.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from tqdm import tqdm

from wit_builder.core import atomic
from wit_builder.core.options import WitError
from wit_builder.synthweb import render

log = logging.getLogger(__name__)

PLACEHOLDER_ORIGIN = "http://origin.synthweb.invalid"
SECTIONS = ("gallery", "blog", "shop", "archive", "private")
PRIVATE = "private"
FOREIGN = ("fr", "de", "es")
TRUTH = "site_truth.json"
RESPONSES = ".responses.json"
PIXEL = "/px.gif"
PLACEHOLDER_IMAGE = "/static/blank.gif"
MISSING_PAGE = "/blog/removed.html"  # linked from the home page, never written: a 404
OPT_OUT_EVERY = 20  # every 20th captioned picture is served with X-Robots-Tag: noai
FAULT_EVERY = 12  # every 12th captioned single-file picture fails, each fault in turn
FAULTS = ("missing", "not-image", "truncated", "redirect", "redirect-loop")
DOWNLOAD_STATUS = {"missing": "http_error", "not-image": "not_image", "truncated": "decode_error",
                   "redirect": "ok", "redirect-loop": "redirect_loop"}
MOVED_PAGE = (b'<!DOCTYPE html>\n<html lang="en"><head><title>Moved</title></head>'
              b"<body><p>This picture has moved.</p></body></html>\n")
PNG_SHARE = 0.15
BASE_HREF = "/img/"  # one article in seven has <base href="/img/">
# 1x1 transparent GIF: the tracking pixel, the lazy-loading placeholder and the data: URI decoy.
ONE_PIXEL_GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000"
                              "010001000002024401003b")
ROBOTS_TXT = ("User-agent: *\nDisallow: /private/\n\n"
              "User-agent: witbuilder-test-banned\nDisallow: /\n")

# The markup of each image slot, cycled over the site so every form appears even on a small site.
FORM_CYCLE = ("src-root", "srcset-w", "src-parent", "figure", "src-absolute", "data-src",
              "no-alt", "src-relative", "title", "src-root", "srcset-x", "filename-alt",
              "src-parent", "figure", "data-uri", "src-relative")
DECOY_FORMS = {"no-alt", "filename-alt", "data-uri"}

# Ready-made prose of the pages, per language (our own words).
PROSE = {
    "en": ["Welcome to our collection of simple pictures.",
           "Every picture on this page shows a few shapes in bright colours.",
           "We add new drawings to the archive every week.",
           "The shapes are drawn by hand and scanned at a small size.",
           "Readers often ask which colours we like best.",
           "Some pictures show one large shape, others several small ones.",
           "You can use these images for lessons about colours and shapes.",
           "The background of each picture is plain, striped, dotted or checkered."],
    "fr": ["Bienvenue dans notre collection de dessins simples.",
           "Chaque image de cette page montre des formes de couleurs vives.",
           "Nous ajoutons de nouveaux dessins chaque semaine.",
           "Les formes sont dessinées à la main puis numérisées."],
    "de": ["Willkommen in unserer Sammlung einfacher Bilder.",
           "Jedes Bild auf dieser Seite zeigt Formen in kräftigen Farben.",
           "Wir fügen jede Woche neue Zeichnungen hinzu.",
           "Die Formen werden von Hand gezeichnet und danach eingescannt."],
    "es": ["Bienvenidos a nuestra colección de dibujos sencillos.",
           "Cada imagen de esta página muestra formas de colores vivos.",
           "Cada semana añadimos nuevos dibujos al archivo.",
           "Las formas se dibujan a mano y luego se escanean."],
}
TITLES = {"en": "Pictures", "fr": "Images", "de": "Bilder", "es": "Imágenes"}
ORIGIN_PATTERN = re.compile(r"^https?://([A-Za-z0-9.\-]+|\[[0-9a-fA-F:]+\])(:\d+)?$")


def check_origin(origin: str) -> str:
    """`origin` if it is scheme://host[:port] without a path, else a WitError."""
    if not ORIGIN_PATTERN.match(origin):
        raise WitError(f"synthweb: origin '{origin}' is not of the form http://HOST:PORT "
                       f"(no path, no trailing slash)")
    return origin


@dataclass(eq=False)  # pages are compared by identity
class Page:
    path: str  # URL path: "/", "/gallery/", "/gallery/post-0003.html"
    file: str  # file under site/
    section: str
    lang: str
    title: str
    base: str = ""  # URL path of its <base href>, if it has one
    links: list[str] = field(default_factory=list)  # hrefs as written
    body: list[str] = field(default_factory=list)  # HTML fragments

    def directory(self) -> str:
        """What relative URLs of the page are resolved against (its <base href> wins)."""
        return self.base or self.path.rsplit("/", 1)[0] + "/"


def plan_articles(site_pages: int) -> list[tuple[str, str]]:
    """(section, language) of each article: one in ten private, one in six public ones foreign."""
    articles = site_pages - 1 - len(SECTIONS)
    if articles < len(SECTIONS):
        raise WitError(f"synthweb: site_pages = {site_pages} is too small; need at least "
                       f"{1 + 2 * len(SECTIONS)} (home, {len(SECTIONS)} sections, an article "
                       f"each)")
    public = [name for name in SECTIONS if name != PRIVATE]
    plan, foreign = [], 0
    for k in range(articles):
        if k % 10 == 9:
            plan.append((PRIVATE, "en"))
        elif k % 6 == 5:
            plan.append((public[k % len(public)], FOREIGN[foreign % len(FOREIGN)]))
            foreign += 1
        else:
            plan.append((public[k % len(public)], "en"))
    return plan


def article_path(section: str, k: int) -> str:
    return f"/{section}/post-{k:04d}.html"


def resolve(page: Page, href: str) -> str:
    """The URL path an href written on `page` points to (site-internal hrefs only)."""
    return urlsplit(urljoin(PLACEHOLDER_ORIGIN + (page.base or page.path), href)).path


def html_document(page: Page) -> str:
    body = "\n".join(page.body)
    base = f'<base href="{page.base}">\n' if page.base else ""
    return (f'<!DOCTYPE html>\n<html lang="{page.lang}">\n<head>\n<meta charset="utf-8">\n{base}'
            f"<title>{html.escape(page.title)}</title>\n</head>\n<body>\n<a id=\"top\"></a>\n"
            f"{body}\n<img src=\"{PIXEL}\" width=\"1\" height=\"1\" alt=\"\">\n</body>\n</html>\n")


def paragraphs(lang: str, rng: random.Random, count: int = 2) -> list[str]:
    return [f"<p>{html.escape(' '.join(rng.sample(PROSE[lang], 3)))}</p>" for _ in range(count)]


def link(page: Page, href: str, text: str) -> str:
    page.links.append(href)
    return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'


# --- pictures ----------------------------------------------------------------------------------

@dataclass
class SiteWriter:
    """Collects the site's files and ground truth while pages are built."""

    image_size: int
    files: dict[str, bytes] = field(default_factory=dict)  # URL path -> body
    images: list[dict] = field(default_factory=list)
    responses: dict[str, dict] = field(default_factory=dict)  # URL path -> status and headers
    captioned: int = 0
    single_files: int = 0

    def add_picture(self, path: str, scene: render.Scene, side: int, image_format: str,
                    rng: random.Random) -> dict:
        """Render `scene` into the file at URL `path`; return its truth fields."""
        data = render.encode(render.render(scene, side, rng), image_format)
        self.files[path] = data
        return {"path": path, "format": image_format, "width": side, "height": side,
                "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def picture_urls(form: str, page: Page, name: str) -> tuple[str, str]:
    """(URL as written in the page, URL path of the file) of a picture in markup `form`."""
    if form == "src-relative":
        return name, page.directory() + name
    if form == "src-parent":
        return f"../img/{name}", f"/img/{name}"
    if form == "src-absolute":
        return f"{PLACEHOLDER_ORIGIN}/img/{name}", f"/img/{name}"
    return f"/img/{name}", f"/img/{name}"


def srcset_markup(writer: SiteWriter, form: str, name: str, scene: render.Scene, image_format: str,
                  seed: str, text: str) -> tuple[str, list[dict]]:
    """An <img srcset> with three candidates whose largest (listed second) is the picture."""
    stem, suffix = name.rsplit(".", 1)
    side = writer.image_size
    sides = [side // 2, side, (3 * side) // 4]
    entries, candidates = [], []
    for candidate_side, density in zip(sides, ("1x", "2x", "1.5x")):
        path = f"/img/{stem}-{candidate_side}.{suffix}"
        # Same seed for every candidate: the same picture at three sizes.
        truth = writer.add_picture(path, scene, candidate_side, image_format, random.Random(seed))
        written = path if form == "srcset-w" else "../img/" + path.rsplit("/", 1)[1]
        descriptor = f"{candidate_side}w" if form == "srcset-w" else density
        entries.append(f"{written} {descriptor}")
        candidates.append({**truth, "url": written})
    markup = (f'<img src="{candidates[0]["url"]}" srcset="{", ".join(entries)}" '
              f'alt="{html.escape(text)}">')
    largest = candidates.pop(1)
    return markup, [largest] + candidates


def picture_markup(form: str, url: str, text: str) -> str:
    """The <img> (or <figure>) of one captioned picture or decoy."""
    alt = html.escape(text)
    if form == "data-src":
        return (f'<img class="lazy" src="{PLACEHOLDER_IMAGE}" data-src="{url}" alt="{alt}" '
                'loading="lazy">')
    if form == "figure":
        return f'<figure><img src="{url}"><figcaption>{alt}</figcaption></figure>'
    if form == "title":
        return f'<img src="{url}" title="{alt}">'
    if form == "no-alt":
        return f'<img src="{url}">'
    return f'<img src="{url}" alt="{alt}">'


def add_slot(writer: SiteWriter, page: Page, form: str, seed: str) -> None:
    """One image slot of an article: a captioned picture or a decoy, with its truth rows (for a
    srcset, the largest candidate first)."""
    rng = random.Random(seed)
    scene = render.sample_scene(rng)
    text = render.caption(scene, rng, page.lang)
    image_format = "png" if rng.random() < PNG_SHARE else "jpeg"
    name = f"pic-{len(writer.images):05d}.{'png' if image_format == 'png' else 'jpg'}"
    if form == "filename-alt":
        text = f"{rng.choice(('IMG', 'DSC', 'PXL'))}_{rng.randrange(10_000):04d}.jpg"
    common = {"page": page.path, "form": form, "lang": page.lang, "robots": page.section == PRIVATE,
            "scene": scene.as_dict(), "decoy": form if form in DECOY_FORMS else None,
            "opted_out": False, "fault": None, "download": None, "text": text}
    if form == "data-uri":
        url = "data:image/gif;base64," + base64.b64encode(ONE_PIXEL_GIF).decode()
        markup = picture_markup(form, url, text)
        rows = [{"path": None, "url": url, "format": "gif", "width": 1, "height": 1,
                 "bytes": len(ONE_PIXEL_GIF), "sha256": hashlib.sha256(ONE_PIXEL_GIF).hexdigest()}]
    elif form.startswith("srcset"):
        markup, rows = srcset_markup(writer, form, name, scene, image_format, seed + ":picture",
                                     text)
    else:
        url, path = picture_urls(form, page, name)
        picture = writer.add_picture(path, scene, writer.image_size, image_format,
                                     random.Random(seed + ":picture"))
        markup, rows = picture_markup(form, url, text), [{**picture, "url": url}]
    page.body.append(markup)
    smaller = [{**common, **row, "decoy": "srcset-smaller"} for row in rows[1:]]
    rows = [{**common, **rows[0]}, *smaller]
    if rows[0]["decoy"] is None:
        mark_captioned(writer, rows[0], single_file=not form.startswith("srcset"))
    writer.images += rows


def mark_captioned(writer: SiteWriter, row: dict, single_file: bool) -> None:
    """Count a captioned picture; every FAULT_EVERY-th single file gets a fault, every
    OPT_OUT_EVERY-th picture an opt-out; `download` is what a downloader should report."""
    writer.captioned += 1
    writer.single_files += single_file
    row["download"] = "ok"
    if single_file and writer.single_files % FAULT_EVERY == 0:
        fault = FAULTS[(writer.single_files // FAULT_EVERY - 1) % len(FAULTS)]
        break_picture(writer, row, fault)
        row["fault"], row["download"] = fault, DOWNLOAD_STATUS[fault]
    elif writer.captioned % OPT_OUT_EVERY == 0:
        row["opted_out"], row["download"] = True, "opted_out"
        writer.responses[row["path"]] = {"status": 200, "headers": {"X-Robots-Tag": "noai"}}


def break_picture(writer: SiteWriter, row: dict, fault: str) -> None:
    """Make the picture at `row["path"]` fail to download the way `fault` says."""
    path = row["path"]
    data = writer.files.pop(path)
    if fault == "not-image":  # an HTML page, and said so, where a picture was
        writer.responses[path] = {"status": 200,
                                  "headers": {"Content-Type": "text/html; charset=utf-8"}}
    if fault in ("not-image", "truncated"):
        writer.files[path] = MOVED_PAGE if fault == "not-image" else data[: len(data) // 2]
        body = writer.files[path]
        row["bytes"], row["sha256"] = len(body), hashlib.sha256(body).hexdigest()
    elif fault == "redirect":
        row["redirect_to"] = "/media" + path
        writer.files[row["redirect_to"]] = data
        writer.responses[path] = {"status": 301, "headers": {"Location": row["redirect_to"]}}
    elif fault == "redirect-loop":
        row["redirect_to"] = "/moved" + path
        writer.responses[path] = {"status": 302, "headers": {"Location": row["redirect_to"]}}
        writer.responses[row["redirect_to"]] = {"status": 302, "headers": {"Location": path}}
    if fault in ("missing", "redirect-loop"):
        row["bytes"], row["sha256"] = 0, None


# --- pages -------------------------------------------------------------------------------------

def home_page(articles: list[Page], rng: random.Random) -> Page:
    page = Page("/", "index.html", "home", "en", "Shapes and colours: a picture archive")
    page.body += [f"<h1>{html.escape(page.title)}</h1>", *paragraphs("en", rng)]
    sections = [link(page, f"{PLACEHOLDER_ORIGIN}/{name}/" if name == "blog" else
                     (f"{name}/" if name == "shop" else f"/{name}/"), name.title())
                for name in SECTIONS]
    page.body.append("<nav>" + " | ".join(sections) + "</nav>")
    featured = [link(page, item.path, item.title) for item in articles[:3]]
    page.body.append("<ul>" + "".join(f"<li>{item}</li>" for item in featured) + "</ul>")
    page.body.append("<footer>" + " ".join([
        link(page, "mailto:editor@synthweb.invalid", "Write to us"),
        link(page, "javascript:void(0)", "Print"),
        link(page, "tel:+15550100", "Call"),
        link(page, "ftp://files.synthweb.invalid/archive.zip", "Archive"),
        link(page, "https://external.synthweb.invalid/partner.html", "Partner"),
        link(page, MISSING_PAGE, "An old post"),
        link(page, "#top", "Top")]) + "</footer>")
    return page


def section_page(name: str, articles: list[Page], rng: random.Random) -> Page:
    page = Page(f"/{name}/", f"{name}/index.html", name, "en", f"{name.title()} section")
    page.body += [f"<h1>{html.escape(page.title)}</h1>", *paragraphs("en", rng, 1)]
    items = [link(page, item.path.rsplit("/", 1)[1], item.title) for item in articles]
    page.body.append("<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>")
    page.body.append(link(page, "../", "Home"))
    return page


def article_links(page: Page, neighbours: list[Page], other: Page) -> None:
    """Navigation of an article: its section, neighbours, home and one page of another section
    (root-relative on a page with a <base href>, whose relative links would lead elsewhere)."""
    if page.base:
        parts = [link(page, f"/{page.section}/", "Section"), link(page, "/", "Home")]
        parts += [link(page, item.path, item.title) for item in [*neighbours, other]]
    else:
        parts = [link(page, "./", "Section"), link(page, "/", "Home")]
        parts += [link(page, item.path.rsplit("/", 1)[1], item.title) for item in neighbours]
        parts.append(link(page, ".." + other.path, other.title))
    page.body.append("<nav>" + " | ".join(parts) + "</nav>")


def build_site(config) -> tuple[SiteWriter, list[Page]]:
    """Every page and picture of the site, in memory (a few MB at demo size)."""
    plan = plan_articles(config.site_pages)
    writer = SiteWriter(config.image_size)
    articles = [Page(article_path(section, k), article_path(section, k)[1:], section, lang,
                     f"{TITLES[lang]} {k + 1}") for k, (section, lang) in enumerate(plan)]
    by_section = {name: [item for item in articles if item.section == name] for name in SECTIONS}
    public = [item for item in articles if item.section != PRIVATE]
    slot_number = 0
    for k, page in enumerate(tqdm(articles, desc="synthweb site", unit="page", leave=False)):
        rng = random.Random(f"{config.seed}:page:{k}")
        page.base = BASE_HREF if k % 7 == 3 and page.section != PRIVATE else ""
        page.body += [f"<h1>{html.escape(page.title)}</h1>", *paragraphs(page.lang, rng)]
        for slot in range(config.images_per_page):
            form = FORM_CYCLE[slot_number % len(FORM_CYCLE)]
            add_slot(writer, page, form, f"{config.seed}:image:{k}:{slot}")
            slot_number += 1
        same_section = by_section[page.section]
        index = same_section.index(page)
        neighbours = same_section[max(0, index - 1):index] + same_section[index + 1:index + 2]
        others = [item for item in public if item.section != page.section]
        article_links(page, neighbours, rng.choice(others))
    rng = random.Random(f"{config.seed}:home")
    sections = [section_page(name, by_section[name], rng) for name in SECTIONS]
    return writer, [home_page(articles, rng), *sections, *articles]


def page_truth(page: Page) -> dict:
    internal = [resolve(page, href) for href in page.links
                if href.startswith(("/", ".", PLACEHOLDER_ORIGIN)) or ":" not in href.split("/")[0]]
    return {"path": page.path, "file": page.file, "section": page.section, "lang": page.lang,
            "title": page.title, "base": page.base or None, "robots": page.section == PRIVATE,
            "hrefs": page.links,
            "links": list(dict.fromkeys(path for path in internal if path != page.path))}


def write_directory(target: Path, files: dict[str, bytes]) -> None:
    """Write `files` into a fresh directory that then replaces `target` (no stale files remain)."""
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    for name, data in files.items():
        atomic.write_bytes(staging / name, data)
    retired = target.with_name(target.name + ".old")
    shutil.rmtree(retired, ignore_errors=True)
    if target.exists():
        target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)


def write_site(out: Path, config) -> dict:
    """Write the website under `out/site/` and its ground truth `out/site_truth.json`."""
    writer, pages = build_site(config)
    files = {path.lstrip("/"): data for path, data in writer.files.items()}
    files.update({page.file: html_document(page).encode() for page in pages})
    files.update({"robots.txt": ROBOTS_TXT.encode(), PIXEL[1:]: ONE_PIXEL_GIF,
                  PLACEHOLDER_IMAGE[1:]: ONE_PIXEL_GIF,
                  RESPONSES: json.dumps(writer.responses, indent=1, sort_keys=True).encode()})
    write_directory(Path(out) / "site", dict(sorted(files.items())))
    truth = {"placeholder_origin": PLACEHOLDER_ORIGIN, "robots_disallow": [f"/{PRIVATE}/"],
             "pixel": PIXEL, "lazy_placeholder": PLACEHOLDER_IMAGE,
             "missing_pages": [MISSING_PAGE],
             "redirects": {path: answer["headers"]["Location"] for path, answer
                           in sorted(writer.responses.items()) if answer["status"] in (301, 302)},
             "pages": [page_truth(page) for page in pages], "images": writer.images}
    atomic.write_json(Path(out) / TRUTH, truth)
    captioned = [row for row in writer.images if row["decoy"] is None]
    log.info("synthweb: site with %d pages, %d captioned pictures, %d decoys", len(pages),
             len(captioned), len(writer.images) - len(captioned))
    return {"path": "site", "truth": TRUTH, "pages": len(pages), "files": len(files),
            "captioned_images": len(captioned), "decoys": len(writer.images) - len(captioned),
            "bytes": sum(len(data) for data in files.values())}


# --- what a polite crawler fetches (the WARC and the pool record exactly this) ----------------

def read_truth(out: Path) -> dict:
    path = Path(out) / TRUTH
    if not path.exists():
        raise WitError(f"synthweb: '{path}' is missing; generate the site first")
    return json.loads(path.read_text())


def is_disallowed(truth: dict, path: str) -> bool:
    return any(path.startswith(prefix) for prefix in truth["robots_disallow"])


def kept_images(truth: dict) -> dict[str, list[dict]]:
    """Per page, the captioned pictures a crawler keeps: not decoys, not behind robots.txt."""
    kept: dict[str, list[dict]] = {}
    for row in truth["images"]:
        if row["decoy"] is None and not row["robots"] and not is_disallowed(truth, row["path"]):
            kept.setdefault(row["page"], []).append(row)
    return kept


def crawl_order(truth: dict) -> list[str]:
    """URL paths in the order a robots-obeying breadth-first crawler fetches them from `/`:
    robots.txt, then each page (a missing one included) followed by its kept pictures (and the
    redirects they lead to, once each)."""
    pages = {page["path"]: page for page in truth["pages"]}
    images = kept_images(truth)
    order, seen, queue = ["/robots.txt"], {"/"}, ["/"]
    while queue:
        path = queue.pop(0)
        order.append(path)
        for row in images.get(path, []):
            target = row["path"]
            while target is not None and target not in seen:
                seen.add(target)
                order.append(target)
                target = truth["redirects"].get(target)
        for target in pages.get(path, {}).get("links", []):
            if target not in seen and not is_disallowed(truth, target):
                seen.add(target)
                queue.append(target)
    return order
