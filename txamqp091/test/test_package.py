"""The package's public surface: pika-compatible top-level names and layout."""

from __future__ import annotations

from pathlib import Path

import pika
from twisted.trial.unittest import SynchronousTestCase

import txamqp091

ROOT = Path(__file__).resolve().parents[2]


class TopLevelNamesTests(SynchronousTestCase):
    """``import txamqp091 as pika`` finds the names pika programs use."""

    def test_pika_names_present(self) -> None:
        """Every name of ours in ``__all__`` that pika also has exists at our top level."""
        shared = [name for name in txamqp091.__all__ if hasattr(pika, name)]
        self.assertIn("BasicProperties", shared)
        self.assertIn("URLParameters", shared)
        for name in shared:
            self.assertTrue(hasattr(txamqp091, name), name)

    def test_pika_style_program(self) -> None:
        """A pika-style snippet builds the same settings with txamqp091 in its place."""
        for module in (pika, txamqp091):
            params = module.URLParameters("amqp://user:secret@broker.example:5673/%2Fvh")
            self.assertEqual(params.host, "broker.example")
            self.assertEqual(params.port, 5673)
            self.assertEqual(params.virtual_host, "/vh")
            creds = module.PlainCredentials("user", "secret")
            conn = module.ConnectionParameters("localhost", credentials=creds, heartbeat=30)
            self.assertEqual(conn.heartbeat, 30)
            props = module.BasicProperties(
                content_type="text/plain", delivery_mode=module.DeliveryMode.Persistent
            )
            self.assertEqual(props.delivery_mode, 2)
            self.assertEqual(module.spec.PERSISTENT_DELIVERY_MODE, 2)
            self.assertEqual(module.spec.Basic.Publish.INDEX, 0x003C0028)

    def test_all_is_accurate(self) -> None:
        """Every name in ``__all__`` exists."""
        for name in txamqp091.__all__:
            self.assertTrue(hasattr(txamqp091, name), name)


class LayoutTests(SynchronousTestCase):
    """The repository layout promised by the guide."""

    def test_plugins_folder_is_not_a_package(self) -> None:
        """``twisted/plugins`` has no ``__init__.py`` (Twisted would skip such a package)."""
        self.assertTrue((ROOT / "twisted" / "plugins").is_dir())
        self.assertFalse((ROOT / "twisted" / "plugins" / "__init__.py").exists())
        self.assertFalse((ROOT / "twisted" / "__init__.py").exists())

    def test_typed_marker_shipped(self) -> None:
        """``py.typed`` marks the package as typed."""
        self.assertTrue((ROOT / "txamqp091" / "py.typed").is_file())

    def test_wheel_ships_the_relay_plugin(self) -> None:
        """A built wheel puts the amqp-relay plugin into ``twisted/plugins/`` (where an
        installed twistd finds it) and nothing else of Twisted's."""
        import shutil
        import subprocess
        import sys
        import tempfile
        import zipfile

        with tempfile.TemporaryDirectory() as out:
            # Built from a copy: pip builds in the source tree, which must stay clean.
            source = Path(out) / "src"
            shutil.copytree(
                ROOT,
                source,
                ignore=shutil.ignore_patterns(
                    ".git", "build", "dist", "*.egg-info", "*_cache", "__pycache__", "_trial_temp*"
                ),
            )
            subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "--quiet", "--wheel-dir", out, str(source)],
                check=True,
                capture_output=True,
            )  # fmt: skip
            (wheel,) = Path(out).glob("txamqp091-*.whl")
            names = zipfile.ZipFile(wheel).namelist()
        twisted = [name for name in names if name.startswith("twisted/")]
        self.assertEqual(twisted, ["twisted/plugins/txamqp091_relay.py"])
        self.assertIn("txamqp091/relay/link.py", names)
