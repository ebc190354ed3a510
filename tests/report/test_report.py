"""report.html of real runs, rendered in headless Chromium: the page draws
(a PNG that is not blank), and the DOM holds what a person looks for: the
groups, the task ids, a device lane, the failure's message and the tail of its
stderr.log, escaped. Also the table sorter, run by the browser.

Environment: as the integration tests (tests/integration/fftest.py), plus
and the page is drawn again by `fedflow-host report WORKDIR` before it is
looked at (the run has written it already: the command must agree).
Skipped (77) where chromium is not installed (scripts/install-deps --tests).
The demo's page is kept as <build>/tests/report/demo-report.png.
"""
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.join(os.environ.get("FEDFLOW_SOURCE_ROOT", ""), "tests", "integration"))
import fftest  # noqa: E402

WIDTH, HEIGHT = 1400, 1000


def chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def decode_png(data):
    """(width, height, rows of RGB(A) bytes) of an 8-bit PNG: what Chromium writes."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise AssertionError("not a PNG: %r" % data[:16])
    pos, idat, head = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if zlib.crc32(kind + body) & 0xFFFFFFFF != struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]:
            raise AssertionError("PNG chunk %r has a bad CRC" % kind)
        pos += 12 + n
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    width, height, depth, color, _, _, interlace = head
    if depth != 8 or color not in (2, 6) or interlace:
        raise AssertionError("unexpected PNG format: depth %d, colour type %d, interlace %d" % (depth, color, interlace))
    bpp = 3 if color == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    rows, prev, p = [], bytearray(stride), 0
    for _ in range(height):
        f, line = raw[p], bytearray(raw[p + 1:p + 1 + stride])
        p += 1 + stride
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + ((a + b) >> 1)) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def colour_stats(rows, bpp):
    """Distinct colours, and the share of pixels that differ from the most common one."""
    counts = {}
    for row in rows:
        for i in range(0, len(row), bpp * 2):  # every other pixel is plenty
            px = row[i:i + 3]
            counts[px] = counts.get(px, 0) + 1
    total = sum(counts.values())
    return len(counts), 1 - max(counts.values()) / total, counts


class ReportTest(fftest.HostTest):
    def setUp(self):
        super().setUp()
        self.browser = chromium()
        if not self.browser:
            self.skipTest("chromium is not installed (scripts/install-deps --tests)")

    def render(self, workdir):
        path = os.path.join(workdir, "report.html")
        self.assertTrue(os.path.isfile(path), "the run wrote no report.html")
        p = subprocess.run([fftest.HOST, "report", workdir], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, "fedflow-host report failed: %s" % p.stderr)
        self.assertEqual(p.stdout.strip(), path)
        self.assertTrue(os.path.isfile(path))
        leftovers = [n for n in os.listdir(workdir) if n.endswith(".tmp")]
        self.assertEqual(leftovers, [], "temporary files left in the workdir")
        return path

    def chromium(self, *args):
        """Runs headless Chromium with a fresh profile; returns its stdout."""
        profile = tempfile.mkdtemp(prefix="chromium-", dir=self.tmp)
        argv = [self.browser, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + profile,
                "--no-first-run", "--hide-scrollbars", "--window-size=%d,%d" % (WIDTH, HEIGHT)] + list(args)
        p = subprocess.run(argv, capture_output=True, timeout=120, start_new_session=True)
        self.assertEqual(p.returncode, 0, "chromium failed (%d): %s" % (p.returncode, p.stderr.decode(errors="replace")[-3000:]))
        return p.stdout.decode("utf-8", errors="replace")

    def screenshot(self, html, png):
        self.chromium("--screenshot=" + png, "file://" + html)
        self.assertTrue(os.path.isfile(png), "chromium wrote no screenshot")
        with open(png, "rb") as f:
            width, height, bpp, rows = decode_png(f.read())
        self.assertEqual((width, height), (WIDTH, HEIGHT))
        colours, drawn, _ = colour_stats(rows, bpp)
        # A blank or unstyled page has a handful of colours; this one has
        # cards, badges, bars in several colours and anti-aliased text.
        self.assertGreater(colours, 200, "the page looks blank: %d colours" % colours)
        self.assertGreater(drawn, 0.15, "the page looks blank: %.0f%% of pixels drawn" % (drawn * 100))
        return rows, bpp

    def test_run_with_a_failure(self):
        plan = self.write_plan("""
[[group]]
name = "clients"
plugin = "echo"
tasks = 4

[[group]]
name = "faults"
plugin = "fault_throw_train"
params = { fail = false, sleep = 0.3 }
[[group.task]]
id = "good-a"
[[group.task]]
id = "bad-one"
params = { fail = true }
[[group.task]]
id = "good-b"

[[group]]
name = "sleepers"
plugin = "fault_sleep"
tasks = 3
params = { seconds = 0.4 }
""")
        r = self.run_plan(plan)
        self.assertExit(r, 1)
        # What the failed task printed, hostile markup included (the fault
        # plugin itself prints nothing).
        with open(r.path("faults", "bad-one", "stderr.log"), "a", encoding="utf-8") as f:
            for i in range(1, 31):
                f.write("stderr line %d\n" % i)
            f.write("<script>document.title='pwned'</script><img src=x onerror=alert(1)>\n")
        html = self.render(r.workdir)
        with open(html, encoding="utf-8") as f:
            page = f.read()
        self.assertNotIn("http://", page.replace("http://www.w3.org/2000/svg", ""), "the page refers to the network")
        self.assertNotIn("https://", page)
        self.assertNotRegex(page, r"<(link|img|iframe)\b", "the page loads other files")

        self.screenshot(html, os.path.join(self.tmp, "report.png"))
        dom = self.chromium("--dump-dom", "file://" + html)
        for text in ["clients", "faults", "sleepers", "good-a", "bad-one", "good-b", "injected failure in train",
                     ">cpu</text>", "Timeline", "Failures", "stderr line 30", "faults/bad-one/stderr.log"]:
            self.assertIn(text, dom, "%r is not in the rendered page" % text)
        self.assertNotIn("stderr line 10\n", dom, "more than the last 20 lines of stderr.log")
        self.assertIn("&lt;script&gt;document.title='pwned'&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;", dom)
        self.assertEqual(len(re.findall(r"<script\b", dom)), 1, "a task's text became a script")
        self.assertNotIn("pwned</title>", dom)
        self.assertRegex(dom, r"<title>Fedflow · plan · failed</title>")
        # One bar per stage: 10 tasks, a load and a train each (waits last no time here).
        self.assertGreaterEqual(len(re.findall(r'<rect class="b (ld|tr) ', dom)), 20)
        self.assertEqual(len(re.findall(r'<rect class="b tr fail', dom)), 1)

    def test_tables_sort_in_the_browser(self):
        plan = self.write_plan("""
[[group]]
name = "sleepers"
plugin = "fault_sleep"
[[group.task]]
id = "t2"
params = { seconds = 0.2 }
[[group.task]]
id = "t10"
params = { seconds = 0.05 }
[[group.task]]
id = "t1"
params = { seconds = 0.1 }
""")
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        html = self.render(r.workdir)
        # The page as written, plus clicks on two headers after its own script ran.
        with open(html, encoding="utf-8") as f:
            page = f.read()
        clicked = os.path.join(self.tmp, "clicked.html")
        click = ("<script>var th=document.querySelectorAll('table.sortable th');"
                 "function col(n){for(var i=0;i<th.length;i++)if(th[i].textContent===n)return th[i]}"
                 "col('slept').click();col('slept').click();"
                 "document.body.setAttribute('data-order',Array.prototype.map.call("
                 "col('slept').closest('table').tBodies[0].rows,function(r){return r.cells[0].textContent}).join(' '));"
                 "col('Task').click();"
                 "document.body.setAttribute('data-by-task',Array.prototype.map.call("
                 "col('Task').closest('table').tBodies[0].rows,function(r){return r.cells[0].textContent}).join(' '))"
                 "</script></body>")
        with open(clicked, "w", encoding="utf-8") as f:
            f.write(page.replace("</body>", click))
        dom = self.chromium("--dump-dom", "file://" + clicked)
        self.assertIn('data-order="t2 t1 t10"', dom, "descending by slept")
        self.assertIn('data-by-task="t1 t2 t10"', dom, "ascending by task id, in natural order")

    def keep(self, png, name):
        """A copy in <build>/tests/report/ for a person to look at."""
        keep = os.path.join(fftest.BUILD_ROOT, "tests", "report", name)
        if fftest.BUILD_ROOT and os.path.isdir(os.path.dirname(keep)):
            shutil.copyfile(png, keep)

    def test_rounds(self):
        """Five rounds of tests/plugins/round_math: a chart of the server's
        value by round, the results folded by round, a band per round."""
        plan = self.write_plan("""
[[group]]
name = "setup"
plugin = "echo"

[[round]]
count = 5
  [[round.group]]
  name = "clients"
  plugin = "round_math"
  tasks = 3
  params = { role = "client" }
  inputs = ["server"]
  [[round.group]]
  name = "server"
  plugin = "round_math"
  params = { role = "server" }
  inputs = ["clients"]
""")
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        html = self.render(r.workdir)
        png = os.path.join(self.tmp, "rounds.png")
        self.screenshot(html, png)
        self.keep(png, "rounds-report.png")
        dom = self.chromium("--dump-dom", "file://" + html)
        # value: s(r) = 3 * (s(r-1) + r): 3, 15, 54, 174, 537.
        for text in ['<section id="rounds">', "Rounds (5)", 'aria-label="value by round"', "round 5:", ">537</text>",
                     "<title>round 3: value = 54</title>", "values of every round",
                     '<details class="round" id="round-1-5" open="">', '<details class="round" id="round-1-1">',
                     ">rounds</text>"]:
            self.assertIn(text, dom, "%r is not in the rendered page" % text)
        self.assertNotIn('aria-label="round by round"', dom, "the round number is not a curve")
        self.assertNotIn('aria-label="stop by round"', dom, "a boolean is not a curve")
        self.assertEqual(len(re.findall(r'<circle class="cp"', dom)), 5)
        self.assertEqual(len(re.findall(r'<rect class="rb', dom)), 5)
        self.assertEqual(len(re.findall(r'<details class="round"', dom)), 5)
        self.assertIn("Groups</dt><dd>11</dd>", dom)

    def test_demo(self):
        """scripts/demo's plan, on the real digits where scripts/fetch-digits
        got them, else on test_demo.py's synthetic ones: its page is kept in
        the build tree."""
        try:
            fftest.plugin_file("fedavg_client")
        except AssertionError:
            self.skipTest("the demo's plugins are not built (-Ddemo=false)")
        demo = os.path.join(fftest.SOURCE_ROOT, "plugins", "fedavg", "demo.toml")
        if not os.path.isfile(os.path.join(os.path.dirname(demo), "data", "digits.csv")):
            from test_demo import synthetic_digits
            shutil.copy(demo, self.tmp)
            demo = os.path.join(self.tmp, "demo.toml")
            synthetic_digits(os.path.join(self.tmp, "data", "digits.csv"))
        wd = os.path.join(self.tmp, "demo")
        r = self.host(demo, "--workdir", wd, "--progress", "none", workdir=wd, timeout=150)
        self.assertExit(r, 0)
        html = self.render(wd)
        png = os.path.join(self.tmp, "demo.png")
        self.screenshot(html, png)
        self.keep(png, "demo-report.png")
        dom = self.chromium("--dump-dom", "file://" + html)
        for text in ["clients", "server", "fedavg_client", "fedavg_server", "accuracy", "central_accuracy", ">cpu</text>",
                     'aria-label="accuracy by round"', 'aria-label="loss by round"', "Rounds (20)"]:
            self.assertIn(text, dom)


if __name__ == "__main__":
    fftest.main()
