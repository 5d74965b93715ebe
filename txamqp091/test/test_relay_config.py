"""The relay's options and TOML configuration: everything is checked before anything
connects, with a message naming the link and the setting at fault."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from twisted.python import usage
from twisted.trial import unittest

from txamqp091.relay import Options
from txamqp091.relay.config import (
    DEFAULT_HTTP,
    DEFAULT_PREFETCH,
    ConfigError,
    LinkConfig,
    link_config,
    load_config,
    redact,
)

A = "amqp://guest:guest@127.0.0.1:5672/a"
B = "amqp://guest:guest@127.0.0.1:5672/b"
MINIMAL = ["--source", A, "--source-queue", "q", "--dest", B]


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


class OptionsTests(unittest.TestCase):
    """``twistd amqp-relay``'s command line."""

    def test_minimal_link_has_the_defaults(self) -> None:
        relay = parse(*MINIMAL).relay
        self.assertEqual(relay.http, DEFAULT_HTTP)
        self.assertEqual(relay.shutdown_timeout, 30.0)
        self.assertEqual(
            relay.links,
            (LinkConfig(name="default", sources=(A,), source_queue="q", dests=(B,)),),
        )
        link = relay.links[0]
        self.assertEqual(
            (link.ack_mode, link.on_reject, link.prefetch, link.dest_routing_key),
            ("on-confirm", "requeue", DEFAULT_PREFETCH, None),
        )
        self.assertFalse(link.add_forward_headers)

    def test_every_option(self) -> None:
        relay = parse(
            "--source", A, "--source", B, "--source-queue", "in",
            "--dest", B, "--dest", A, "--dest-exchange", "x", "--dest-routing-key", "",
            "--prefetch", "50", "--ack-mode", "on-publish", "--on-reject", "dead-letter",
            "--add-forward-headers", "--http", "tcp:0", "--shutdown-timeout", "2.5",
            "--stall-timeout", "0",
        ).relay  # fmt: skip
        (link,) = relay.links
        self.assertEqual(link.sources, (A, B))
        self.assertEqual(link.dests, (B, A))
        self.assertEqual(link.dest_exchange, "x")
        self.assertEqual(link.dest_routing_key, "")  # given empty: not "keep the original"
        self.assertEqual(link.prefetch, 50)
        self.assertEqual(link.ack_mode, "on-publish")
        self.assertEqual(link.on_reject, "dead-letter")
        self.assertTrue(link.add_forward_headers)
        self.assertEqual(link.stall_timeout, 0.0)
        self.assertEqual(relay.http, "tcp:0")
        self.assertEqual(relay.shutdown_timeout, 2.5)

    def assertUsageError(self, argv: list[str], *words: str) -> None:
        error = self.assertRaises(usage.UsageError, parse, *argv)
        for word in words:
            self.assertIn(word, str(error))

    def test_bad_values(self) -> None:
        self.assertUsageError(
            ["--source", "notaurl", "--source-queue", "q", "--dest", B], "source"
        )
        self.assertUsageError(
            ["--source", "http://host/", "--source-queue", "q", "--dest", B], "amqp://"
        )
        self.assertUsageError(
            ["--source", A, "--source-queue", "q", "--dest", "amqp://h:port/"], "dest"
        )
        self.assertUsageError([*MINIMAL, "--ack-mode", "sometimes"], "ack-mode", "on-confirm")
        self.assertUsageError([*MINIMAL, "--on-reject", "keep"], "on-reject")
        self.assertUsageError([*MINIMAL, "--prefetch", "0"], "prefetch")
        self.assertUsageError([*MINIMAL, "--prefetch", "many"], "prefetch")
        self.assertUsageError([*MINIMAL, "--prefetch", "70000"], "prefetch")
        self.assertUsageError([*MINIMAL, "--shutdown-timeout", "-1"], "shutdown-timeout")
        self.assertUsageError([*MINIMAL, "--stall-timeout", "soon"], "stall-timeout")
        self.assertUsageError([*MINIMAL, "--dest-exchange", "x" * 256], "dest-exchange")
        self.assertUsageError([*MINIMAL, "--http", "bogus:1"], "http", "bogus")
        self.assertUsageError([*MINIMAL, "--http", "tcp:notaport"], "http")
        self.assertUsageError([*MINIMAL, "--http", "ssl:0:privateKey=/nonexistent.pem"], "http")

    def test_missing_settings(self) -> None:
        self.assertUsageError([], "no link")
        self.assertUsageError(["--source", A, "--dest", B], "source-queue is required")
        self.assertUsageError(["--source-queue", "q", "--dest", B], "source is required")
        self.assertUsageError(["--source", A, "--source-queue", "q"], "dest is required")

    def test_unknown_option(self) -> None:
        self.assertRaises(usage.UsageError, parse, *MINIMAL, "--desti", B)

    def test_password_not_in_messages(self) -> None:
        error = self.assertRaises(
            usage.UsageError,
            parse,
            "--source", "amqp://user:s3cret@host:notaport/", "--source-queue", "q", "--dest", B,
        )  # fmt: skip
        self.assertNotIn("s3cret", str(error))
        self.assertIn("user:***@", str(error))


class ConfigFileTests(unittest.TestCase):
    """``--config FILE``: named links in TOML."""

    def write(self, text: str) -> str:
        fd, path = tempfile.mkstemp(suffix=".toml")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        self.addCleanup(os.remove, path)
        return path

    def test_links_and_relay_settings(self) -> None:
        path = self.write(
            f"""
http = "tcp:9999:interface=127.0.0.1"
shutdown-timeout = 5

[links.orders]
source = ["{A}", "{B}"]
source-queue = "orders"
dest = "{B}"
dest-exchange = "archive"
prefetch = 10
add-forward-headers = true

[links.audit]
source = "{A}"
source-queue = "audit"
dest = "{B}"
ack-mode = "no-ack"
"""
        )
        relay = parse("--config", path).relay
        self.assertEqual([link.name for link in relay.links], ["orders", "audit"])
        orders, audit = relay.links
        self.assertEqual(orders.sources, (A, B))
        self.assertEqual((orders.dest_exchange, orders.prefetch), ("archive", 10))
        self.assertTrue(orders.add_forward_headers)
        self.assertEqual(audit.ack_mode, "no-ack")
        self.assertEqual(relay.http, "tcp:9999:interface=127.0.0.1")
        self.assertEqual(relay.shutdown_timeout, 5.0)

    def test_command_line_wins_and_adds_a_default_link(self) -> None:
        path = self.write(
            f'shutdown-timeout = 5\n[links.one]\nsource = "{A}"\nsource-queue = "q"\n'
            f'dest = "{B}"\n'
        )
        relay = parse("--config", path, "--shutdown-timeout", "1", *MINIMAL).relay
        self.assertEqual([link.name for link in relay.links], ["default", "one"])
        self.assertEqual(relay.shutdown_timeout, 1.0)

    def test_bad_files(self) -> None:
        cases: list[tuple[str, str]] = [
            ("[links.x\n", "not valid TOML"),
            ('colour = "red"\n', "unknown top-level setting"),
            ('links = "x"\n', "tables"),
            (f'[links.x]\nsource = "{A}"\nsource-queue = "q"\ndest = "{B}"\nspeed = 1\n', "speed"),
            (f'[links.x]\nsource = "{A}"\ndest = "{B}"\n', "source-queue is required"),
            (f'[links.x]\nsource = []\nsource-queue = "q"\ndest = "{B}"\n', "source"),
            (f'[links.x]\nsource = "{A}"\nsource-queue = "q"\ndest = 5\n', "dest"),
            (
                f'[links.x]\nsource = "{A}"\nsource-queue = "q"\ndest = "{B}"\n'
                "add-forward-headers = 1\n",
                "add-forward-headers",
            ),
            (f'[links."a b"]\nsource = "{A}"\nsource-queue = "q"\ndest = "{B}"\n', "name"),
        ]
        for text, words in cases:
            error = self.assertRaises(usage.UsageError, parse, "--config", self.write(text))
            self.assertIn(words, str(error), text)

    def test_missing_file(self) -> None:
        error = self.assertRaises(usage.UsageError, parse, "--config", "/nonexistent.toml")
        self.assertIn("cannot read /nonexistent.toml", str(error))

    def test_duplicate_names(self) -> None:
        path = self.write(f'[links.default]\nsource = "{A}"\nsource-queue = "q"\ndest = "{B}"\n')
        error = self.assertRaises(usage.UsageError, parse, "--config", path, *MINIMAL)
        self.assertIn("given twice: default", str(error))


class HelpersTests(unittest.TestCase):
    """link_config and redact, used by both the command line and the file."""

    def test_link_config_errors_name_the_link(self) -> None:
        settings: dict[str, Any] = {"source": A, "source-queue": "q", "dest": B, "prefetch": True}
        error = self.assertRaises(ConfigError, link_config, "mine", settings)
        self.assertIn("link 'mine': prefetch", str(error))

    def test_load_config_returns_links_and_settings(self) -> None:
        fd, path = tempfile.mkstemp(suffix=".toml")
        with os.fdopen(fd, "w") as f:
            f.write('http = "tcp:1"\n')
        self.addCleanup(os.remove, path)
        self.assertEqual(load_config(path), ([], {"http": "tcp:1"}))

    def test_redact(self) -> None:
        self.assertEqual(redact("amqp://u:p@h/v"), "amqp://u:***@h/v")
        self.assertEqual(redact("amqp://h/v"), "amqp://h/v")
        self.assertEqual(redact("amqps://u@h:5671/"), "amqps://u@h:5671/")
        for secret in ("pa/ss", "pa#ss", "pa?ss", "p@ss", "s3cret"):
            with self.subTest(secret=secret):
                for scheme in ("amqp", "AMQP", "amqps"):
                    shown = redact(f"{scheme}://user:{secret}@host:5672/vh")
                    self.assertEqual(shown, f"{scheme}://user:***@host:5672/vh")

    def test_parser_errors_do_not_show_the_password(self) -> None:
        """The URL parser's own message may quote the password (a malformed port
        here): it is hidden there too."""
        for url in (
            "amqp://user:s3cret@host:notaport/",
            "amqp://user:pa/ss@host:99999999/",
            "AMQP://user:s3cret@host/",
        ):
            with self.subTest(url=url):
                error = self.assertRaises(
                    usage.UsageError, parse, "--source", url, "--source-queue", "q", "--dest", B
                )
                self.assertNotIn("s3cret", str(error))
                self.assertNotIn("pa/ss", str(error))
