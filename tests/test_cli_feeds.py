"""`digest feeds ...` end to end: CliRunner, a real feed server, a real SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from digest.cli import main


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_check_prints_a_table_and_exits_0_despite_failing_feeds(
    feed_server, write_blogs, db_path
) -> None:
    blogs = write_blogs(
        {
            "sander": feed_server.serve_fixture("/sander.xml", "sander.atom.xml"),
            "gone": feed_server.fail("/gone.xml", 410),
            "blocked": feed_server.fail("/blocked.xml", 403, headers={"Server": "cloudflare"}),
        }
    )
    code, out, _ = invoke("--blogs", str(blogs), "--db", str(db_path), "feeds", "check")
    assert code == 0
    for text in ("sander", "ok", "200", "gone", "410", "HTTP 403 from Cloudflare", "never"):
        assert text in out
    assert "Polling stopped" in out


def test_check_json(feed_server, write_blogs, db_path) -> None:
    blogs = write_blogs(
        {
            "colah": feed_server.serve_fixture("/colah.xml", "colah.rss.xml"),
            "broken": feed_server.serve("/b.xml", "<rss><channel><title>x</titl"),
        }
    )
    code, out, _ = invoke("--blogs", str(blogs), "--db", str(db_path), "feeds", "check", "--json")
    assert code == 0
    doc = json.loads(out)
    by_blog = {f["blog"]: f for f in doc["feeds"]}
    assert by_blog["colah"]["status"] == "ok" and by_blog["colah"]["http_status"] == 200
    assert by_blog["colah"]["newest"] == "2019-05-30T00:00:00Z"
    assert by_blog["broken"]["status"] == "error" and by_blog["broken"]["failures"] == 1
    assert by_blog["broken"]["error"].startswith("not a feed")
    assert doc["failed"] == 1
    # check fetches every feed now, even those not yet due.
    code, out, _ = invoke("--blogs", str(blogs), "--db", str(db_path), "feeds", "check", "--json")
    statuses = {f["blog"]: f["status"] for f in json.loads(out)["feeds"]}
    assert statuses == {"colah": "not_modified", "broken": "error"}


def test_check_with_a_bad_blogs_yaml_fails_clearly(tmp_path: Path, db_path) -> None:
    bad = tmp_path / "blogs.yaml"
    bad.write_text("newsletter:\n  title: x\ncategories: []\n")
    code, _, err = invoke("--blogs", str(bad), "--db", str(db_path), "feeds", "check")
    assert code == 1
    assert "error:" in err and "blogs.yaml" in err and "Traceback" not in err


def test_check_with_an_unwritable_database_fails_clearly(
    feed_server, write_blogs, tmp_path: Path
) -> None:
    blogs = write_blogs({"colah": feed_server.serve_fixture("/c.xml", "colah.rss.xml")})
    (tmp_path / "afile").write_text("not a folder")
    code, _, err = invoke(
        "--blogs", str(blogs), "--db", str(tmp_path / "afile" / "d.db"), "feeds", "check"
    )
    assert code == 1 and "error:" in err and "DIGEST_DB" in err


def test_unknown_blog_id(feed_server, write_blogs, db_path) -> None:
    blogs = write_blogs({"colah": feed_server.serve_fixture("/c.xml", "colah.rss.xml")})
    code, _, err = invoke("--blogs", str(blogs), "--db", str(db_path), "feeds", "check", "nope")
    assert code == 1 and "no blog with id nope" in err


def test_list_discover_and_opml(feed_server, write_blogs, db_path, tmp_path: Path) -> None:
    feed_server.serve_fixture("/feed.xml", "optimisticunderground.rss.xml")
    home = feed_server.serve(
        "/",
        "<html><head><link rel=alternate type='application/rss+xml' "
        "href='/feed.xml'></head></html>",
        content_type="text/html",
    )
    blogs = write_blogs({"delayed": None}, homepages={"delayed": home})
    base = ("--blogs", str(blogs), "--db", str(db_path))

    code, out, _ = invoke(*base, "feeds", "list")
    assert code == 0 and "delayed" in out and "discover" in out

    code, out, err = invoke(*base, "feeds", "discover", home)
    assert code == 0 and out.strip() == feed_server.url("/feed.xml") and "linked" in err

    assert invoke(*base, "feeds", "check")[0] == 0
    code, out, _ = invoke(*base, "feeds", "export-opml")
    assert code == 0 and f'xmlUrl="{feed_server.url("/feed.xml")}"' in out

    opml = tmp_path / "in.opml"
    opml.write_text(
        '<opml version="2.0"><body><outline text="Colah" type="rss" '
        f'xmlUrl="{feed_server.serve_fixture("/c.xml", "colah.rss.xml")}"/></body></opml>'
    )
    code, out, _ = invoke(*base, "feeds", "import-opml", str(opml), "--category", "main")
    assert code == 0 and "added colah to main" in out
    code, out, _ = invoke(*base, "feeds", "check", "--json")
    assert {f["blog"] for f in json.loads(out)["feeds"]} == {"delayed", "colah"}


def test_discover_failure_exits_1(feed_server, write_blogs, db_path) -> None:
    page = feed_server.serve("/", "<html>nothing</html>", content_type="text/html")
    blogs = write_blogs({"x": None})
    code, _, err = invoke("--blogs", str(blogs), "--db", str(db_path), "feeds", "discover", page)
    assert code == 1 and "no feed found" in err


def test_opml_round_trip_adds_nothing(feed_server, write_blogs, db_path, tmp_path: Path) -> None:
    """export-opml then import-opml: a discovered feed, a feed that moved for good and a plain
    one each stay one blog (an exported OPML lists the URLs digest fetches now)."""
    feed_server.serve_fixture("/found.xml", "optimisticunderground.rss.xml")
    home = feed_server.serve(
        "/home/",
        "<html><head><link rel=alternate type='application/rss+xml' "
        "href='/found.xml'></head></html>",
        content_type="text/html",
    )
    feed_server.serve_fixture("/new-place.xml", "colah.rss.xml")
    moved = feed_server.redirect("/old-place.xml", "/new-place.xml", 301)
    plain = feed_server.serve_fixture("/sander.xml", "sander.atom.xml")
    blogs = write_blogs(
        {"delayed": None, "colah": moved, "sander": plain}, homepages={"delayed": home}
    )
    base = ("--blogs", str(blogs), "--db", str(db_path))
    assert invoke(*base, "feeds", "check")[0] == 0
    before = blogs.read_text()
    opml = tmp_path / "out.opml"
    assert invoke(*base, "feeds", "export-opml", "-o", str(opml))[0] == 0
    assert feed_server.url("/found.xml") in opml.read_text()
    assert feed_server.url("/new-place.xml") in opml.read_text()

    code, out, _ = invoke(*base, "feeds", "import-opml", str(opml))
    assert code == 0, out
    assert "0 added, 3 skipped" in out
    assert "the feed of delayed" in out and "the feed of colah" in out
    assert blogs.read_text() == before
    code, out, _ = invoke(*base, "feeds", "list")
    assert code == 0 and out.count("main") == 3
