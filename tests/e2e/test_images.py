"""Sluice-Image in extract mode.

Contract: "in extract mode, when the first bytes are a PNG, JPEG, GIF or WebP
image, `Sluice-Image: <png|jpeg|gif|webp> <W>x<H>` (GIF: logical screen size;
JPEG: the first SOFn marker of the main image, skipping over APPn segments
such as EXIF thumbnails; WebP: the canvas size for VP8X; the sniffer may look
at up to the first 256 KiB and stays silent if undecided by then)."
"""

import lib
from lib import Conn, case, eq, req, part, multipart, form_ctype, body_bytes, KiB, MiB

TAIL = body_bytes(40 * KiB, seed=70)      # image data after the header bytes


def sniff(p, content, split=None, target="/img"):
    body = multipart([part("note", b"hi"), part("file", content, filename="i", ctype="image/x")])
    data = req("POST", target, [("Content-Type", form_ctype())], body=body)
    with Conn(p.port) as c:
        if split == "bytewise":
            c.send_bytewise(data)
        elif split is not None:
            c.send_random(data, split, max_piece=7)
        else:
            c.send(data)
        r = c.response("POST")
    lib.sink_saw(r, content, framing="chunked", method="PUT", target=target)
    return r.hdrs("Sluice-Image")


def expect_image(p, content, want, **kw):
    got = sniff(p, content, **kw)
    eq(got, [want], "Sluice-Image")


@case("image: PNG (valid small image and large header)")
def png(env):
    p = env.proxy("--extract", "file")
    expect_image(p, lib.png(3, 2), "png 3x2")
    expect_image(p, lib.png(1920, 1080, TAIL), "png 1920x1080")


@case("image: JPEG, main image SOF0 after an EXIF thumbnail with its own SOF0")
def jpeg_exif(env):
    p = env.proxy("--extract", "file")
    expect_image(p, lib.jpeg(4000, 3000, thumb=(160, 120), tail=TAIL), "jpeg 4000x3000")


@case("image: JPEG, plain SOF0 and progressive SOF2")
def jpeg_plain(env):
    p = env.proxy("--extract", "file")
    expect_image(p, lib.jpeg(640, 480), "jpeg 640x480")
    expect_image(p, lib.jpeg(1024, 768, sof=0xC2, tail=TAIL), "jpeg 1024x768")


@case("image: JPEG, SOF after 100 KiB of APPn segments")
def jpeg_far(env):
    p = env.proxy("--extract", "file")
    expect_image(p, lib.jpeg(33, 44, thumb=(8, 8), app_pad=100 * KiB), "jpeg 33x44")


@case("image: GIF reports the logical screen, not the frame")
def gif(env):
    p = env.proxy("--extract", "file")
    expect_image(p, lib.gif(320, 200, frame=(1, 1)), "gif 320x200")


@case("image: WebP VP8X canvas, VP8L, VP8")
def webp(env):
    p = env.proxy("--extract", "file")
    expect_image(p, lib.webp_vp8x(5000, 300, TAIL), "webp 5000x300")
    expect_image(p, lib.webp_vp8l(640, 400), "webp 640x400")
    expect_image(p, lib.webp_vp8(800, 600, TAIL), "webp 800x600")


@case("image: headers split across 1-byte writes and random small writes")
def split_headers(env):
    p = env.proxy("--extract", "file")
    expect_image(p, lib.jpeg(4000, 3000, thumb=(160, 120)), "jpeg 4000x3000", split="bytewise")
    expect_image(p, lib.png(7, 9), "png 7x9", split="bytewise")
    expect_image(p, lib.webp_vp8x(12, 34), "webp 12x34", split=3)
    expect_image(p, lib.gif(2, 1), "gif 2x1", split=4)


@case("image: silent for non-images, truncated headers and empty parts")
def not_images(env):
    p = env.proxy("--extract", "file")
    for content in (b"", b"hello world", body_bytes(10 * KiB, seed=71), lib.png(5, 5)[:20],
                    b"\xff\xd8\xff", b"GIF89", b"RIFF\x10\x00\x00\x00WEBP", b"\x89PNG\r\n"):
        eq(sniff(p, content), [], "Sluice-Image for %r" % lib.short(content, 24))


@case("image: silent when the JPEG SOF is beyond the first 256 KiB")
def jpeg_undecided(env):
    p = env.proxy("--extract", "file")
    eq(sniff(p, lib.jpeg(10, 20, app_pad=MiB)), [], "Sluice-Image for SOF at 1 MiB")


@case("image: no Sluice-Image in passthrough mode")
def passthrough_silent(env):
    p = env.proxy()
    r = lib.upload(p.port, "/img/pt", lib.png(3, 2))
    eq(r.status, 200, "status")
    eq(r.hdrs("Sluice-Image"), [], "Sluice-Image in passthrough mode")
