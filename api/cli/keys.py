"""`ragops keys`: API keys, each scoped to trust tiers."""

from __future__ import annotations

import click

from api.cli.common import emit, main, process


@main.group()
def keys() -> None:
    """API keys (each scoped to trust tiers)."""


@keys.command("create")
@click.option("--tiers", required=True, help="Comma-separated tiers this key may read.")
@click.option("--name", default="default", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def keys_create(tiers: str, name: str, as_json: bool) -> None:
    """Create a key; it is shown once and stored hashed."""
    settings = process().settings
    chosen = [t.strip() for t in tiers.split(",") if t.strip()]
    unknown = [t for t in chosen if t not in settings.tiers]
    if not chosen or unknown:
        raise click.BadParameter(
            f"unknown tier(s) {', '.join(unknown) or '(none given)'}; "
            f"allowed: {', '.join(settings.tiers)}",
            param_hint="--tiers",
        )
    created = process().services.keys.create(name, chosen)
    data = {"key": created.key, "name": created.name, "tiers": created.tiers}
    emit(as_json, data, f"key for {name} ({', '.join(chosen)}), shown once:\n{created.key}")
