#!/usr/bin/env python3
"""fedflow/fl.hpp in real plugins: docs/examples/fl/plan.toml, run as it is
(the plugins are built from docs/examples/fl as test plugins). The clients'
Dirichlet parts cover every sample exactly once, and the server's weighted
average of their label shares is the label share of the whole set."""
import os
import struct

import fftest
from fftest import HostTest, SOURCE_ROOT

PLAN = os.path.join(SOURCE_ROOT, "docs", "examples", "fl", "plan.toml")


class FlHelpers(HostTest):
    def test_docs_quote_the_example_files(self):
        with open(os.path.join(SOURCE_ROOT, "docs", "sdk.md"), encoding="utf-8") as f:
            doc = f.read()
        for name in ("client.cpp", "server.cpp", "plan.toml"):
            with open(os.path.join(SOURCE_ROOT, "docs", "examples", "fl", name), encoding="utf-8") as f:
                self.assertIn("\n" + f.read().rstrip("\n") + "\n```", doc,
                              "docs/sdk.md does not quote docs/examples/fl/%s as it is" % name)

    def test_example_from_the_docs(self):
        r = self.run_plan(PLAN, "--progress", "none")
        self.assertExit(r, 0)
        seen = []
        sizes = []
        for k in range(5):
            res = r.result("clients", str(k))
            self.assertEqual(res["samples"], len(res["indices"]))
            self.assertGreaterEqual(res["samples"], 1)
            with open(r.path("clients", str(k), "weights.bin"), "rb") as f:
                self.assertEqual(res["weights"], fftest.bytes_entry("weights.bin", 12, f.read()))
            seen += res["indices"]
            sizes.append(res["samples"])
        self.assertEqual(sorted(seen), list(range(600)))
        self.assertGreater(max(sizes) - min(sizes), 10, "alpha 0.5 gives clients of quite different sizes: %s" % sizes)

        server = r.result("server", "0")
        self.assertEqual(server["clients"], 5)
        for v in server["average"]:
            self.assertAlmostEqual(v, 1 / 3, places=5)
        with open(r.path("server", "0", "weights.bin"), "rb") as f:
            weights = struct.unpack("=3f", f.read())
        self.assertEqual(list(weights), [float(v) for v in server["average"]])


if __name__ == "__main__":
    fftest.main()
