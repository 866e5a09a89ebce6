# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scenario 6: hostile and malformed requests on the control socket.

Each is answered with the documented error code (man/liveupdated-api.md),
an over-long line gets too-large and the connection closed, pipelined
requests are answered in order, and the daemon keeps serving throughout:
nothing here may crash it or change its state.
"""

import json

import harness


class TestHostileRequests(harness.WorldTestCase):

    def setUp(self):
        super().setUp()
        self.world.start_daemon()
        self.vmm = self.world.start_vmm("vm-a")

    def roundtrip(self, raw: bytes) -> dict:
        """Send raw (a line) on a fresh connection; the one reply."""
        with self.world.api() as c:
            c.send_raw(raw)
            reply = c.read_reply()
        self.assertEqual(reply.get("api"), 1, reply)
        return reply

    def assertRefused(self, raw: bytes, code: str, id_=None) -> dict:
        reply = self.roundtrip(raw)
        self.assertIs(reply.get("ok"), False, f"{raw[:80]!r} -> {reply}")
        self.assertEqual(reply["error"]["code"], code, f"{raw[:80]!r} -> {reply}")
        self.assertIsInstance(reply["error"]["message"], str, reply)
        self.assertTrue(reply["error"]["message"], reply)
        if id_ is not None:
            self.assertEqual(reply.get("id"), id_, reply)
        return reply

    def assertStillServing(self):
        st = self.world.status()
        self.assertEqual(st["state"], "idle", st)
        self.assertEqual(st["vmms"].get("registered"), 1, st)
        self.assertTrue(self.world.daemon.running())

    def test_invalid_json(self):
        for raw in (b"{not json\n", b'{"api":1,"method":"status"\n', b"\n", b"   \n",
                    b'{"api":1,"method":"status"} trailing\n', b"\xff\xfe{}\n",
                    b'{"api":1,"method":"st\xc3atus"}\n'):
            with self.subTest(raw=raw):
                self.assertRefused(raw, "invalid-json")
        self.assertStillServing()

    def test_not_an_object(self):
        for raw in (b"[1,2,3]\n", b'"status"\n', b"42\n", b"null\n", b"true\n",
                    b'[{"api":1,"method":"status"}]\n'):
            with self.subTest(raw=raw):
                self.assertRefused(raw, "invalid-json")
        self.assertStillServing()

    def test_unknown_method(self):
        self.assertRefused(b'{"api":1,"id":"x","method":"reboot-now"}\n', "unknown-method", "x")
        self.assertRefused(b'{"api":1,"id":2,"method":"STATUS"}\n', "unknown-method", 2)
        self.assertStillServing()

    def test_unknown_member(self):
        self.assertRefused(b'{"api":1,"id":3,"method":"status","bogus":1}\n', "invalid-request", 3)
        self.assertRefused(b'{"api":1,"id":4,"method":"status","params":{"x":1}}\n',
                           "invalid-request", 4)
        path = self.world.make_kernel_image()
        req = {"api": 1, "id": 5, "method": "prepare", "params": {"kernel": path, "kernal": path}}
        self.assertRefused(json.dumps(req).encode() + b"\n", "invalid-request", 5)
        # the refused prepare did nothing
        self.assertNothingPending()
        self.assertEqual(self.vmm.names(), ["registered", "running"])
        self.assertStillServing()

    def test_api_version(self):
        self.assertRefused(b'{"api":2,"id":6,"method":"status"}\n', "unsupported-version", 6)
        self.assertRefused(b'{"api":0,"method":"status"}\n', "unsupported-version")
        # missing api: mandatory
        reply = self.roundtrip(b'{"id":7,"method":"status"}\n')
        self.assertIs(reply["ok"], False, reply)
        self.assertIn(reply["error"]["code"], ("invalid-request", "unsupported-version"), reply)
        self.assertStillServing()

    def test_wrong_types(self):
        path = self.world.make_kernel_image()
        cases = [
            {"api": "1", "method": "status"},
            {"api": 1.5, "method": "status"},
            {"api": 1, "method": 5},
            {"api": 1, "method": "status", "progress": "yes"},
            {"api": 1, "method": "status", "params": []},
            {"api": 1, "method": "prepare"},
            {"api": 1, "method": "prepare", "params": {"kernel": 5}},
            {"api": 1, "method": "prepare", "params": {"kernel": None}},
            {"api": 1, "method": "prepare", "params": {"kernel": path, "timeout_ms": "10"}},
            {"api": 1, "method": "prepare", "params": {"kernel": path, "timeout_ms": -1}},
            {"api": 1, "method": "prepare", "params": {"kernel": path, "append": ["a"]}},
            {"api": 1, "method": "commit", "params": {"freeze_timeout_ms": "x"}},
            {"api": 1, "method": "release", "params": {}},
            {"api": 1, "method": "release", "params": {"vm_id": 7}},
        ]
        for i, req in enumerate(cases):
            req["id"] = {"case": i, "nested": [True, None]}
            with self.subTest(req=req):
                reply = self.roundtrip(json.dumps(req).encode() + b"\n")
                self.assertIs(reply["ok"], False, reply)
                self.assertIn(reply["error"]["code"], ("invalid-request", "unsupported-version"),
                              reply)
        # "api":"1" is a type error, api 1.5 not the version 1: neither may pass
        self.assertNothingPending()
        self.assertEqual(self.vmm.names(), ["registered", "running"])
        self.assertStillServing()

    def test_id_is_echoed(self):
        for id_ in (0, -1, "abc", [1, 2], {"k": {"l": "m"}}, None, 1.25, True):
            with self.subTest(id=id_):
                req = {"api": 1, "id": id_, "method": "status"}
                reply = self.roundtrip(json.dumps(req).encode() + b"\n")
                self.assertIs(reply["ok"], True, reply)
                self.assertEqual(reply.get("id"), id_, reply)

    def test_too_large(self):
        with self.world.api() as c:
            # a valid request padded far beyond 64 KiB, then a newline
            pad = "x" * (70 * 1024)
            c.send_raw(b'{"api":1,"method":"status","id":"' + pad.encode() + b'"}\n')
            msgs = c.wait_eof()
        self.assertEqual(len(msgs), 1, msgs[:2])
        self.assertIs(msgs[0]["ok"], False, msgs)
        self.assertEqual(msgs[0]["error"]["code"], "too-large", msgs)
        # a line of exactly the limit without its newline is too large too
        with self.world.api() as c:
            c.send_raw(b"{" + b" " * (64 * 1024))
            msgs = c.wait_eof()
        self.assertEqual([m["error"]["code"] for m in msgs], ["too-large"], msgs)
        self.assertStillServing()

    def test_pipelined(self):
        reqs = [
            {"api": 1, "id": 1, "method": "status"},
            {"api": 1, "id": 2, "method": "list"},
            {"api": 1, "id": 3, "method": "nope"},
            {"api": 1, "id": 4, "method": "abort"},
            {"api": 1, "id": 5, "method": "report"},
        ]
        data = b"".join(json.dumps(r).encode() + b"\n" for r in reqs) + b"{broken\n"
        data += b'{"api":1,"id":7,"method":"status"}\n'
        with self.world.api() as c:
            # in one write, and split in the middle of a request
            c.send_raw(data[:37])
            c.send_raw(data[37:])
            replies = [c.read_reply() for _ in range(7)]
            # the connection stays usable
            again = c.call("status")
        self.assertEqual([r.get("id") for r in replies], [1, 2, 3, 4, 5, None, 7], replies)
        self.assertEqual([r["ok"] for r in replies], [True, True, False, False, True, False, True])
        self.assertEqual(replies[1]["result"]["vmms"][0]["vm_id"], "vm-a", replies[1])
        self.assertEqual(replies[2]["error"]["code"], "unknown-method")
        self.assertEqual(replies[3]["error"]["code"], "bad-state")
        self.assertEqual(replies[5]["error"]["code"], "invalid-json")
        self.assertIs(again["ok"], True, again)
        self.assertStillServing()

    def test_keeps_serving_after_everything(self):
        # a burst of garbage on many connections, some closed mid-line
        for i in range(20):
            c = self.world.api()
            c.send_raw(b'{"api":1,"method":"sta' if i % 2 else b"\x00\x01\x02\n")
            c.close()
        r = self.world.ctl("status")
        st = self.assertCtlOk(r)
        self.assertEqual(st["state"], "idle", st)
        self.assertStillServing()


if __name__ == "__main__":
    harness.main()
