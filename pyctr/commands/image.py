"""Image commands: pull, push, images, rmi, tag, save, load, history, login, logout and `image ...`.

Output follows Docker's formats (column names, human sizes and durations,
"Untagged:/Deleted:" lines) so scripts written for Docker keep working.
"""

from __future__ import annotations

import json
import sys

import click

from pyctr.commands import AppContext, pass_app
from pyctr.output import table
from pyctr.output.template import GoStruct
from pyctr.output.timefmt import go_time_text, parse_rfc3339, since
from pyctr.units import human_size

# ---------------------------------------------------------------- formatting (docker-cli's contexts)

IMAGE_FORMAT = ("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}"
                "\t{{.Size}}")
IMAGE_FORMAT_WITH_DIGEST = ("table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{if .CreatedSince }}"
                            "{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}")
IMAGE_HEADERS = {
    "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS", "VirtualSize": "SIZE",
    "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
}
HISTORY_FORMAT = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_FORMAT_NON_HUMAN = "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
                   "Size": "SIZE", "Comment": "COMMENT"}
DF_FORMAT = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}


def image_format(fmt: str | None, digests: bool) -> str:
    """docker-cli's NewImageFormat: the default table (with DIGEST under --digests), `raw`, or the user's format."""
    if not fmt or fmt == "table":
        return IMAGE_FORMAT_WITH_DIGEST if digests else IMAGE_FORMAT
    if fmt == "raw":
        return ("repository: {{ .Repository }}\ntag: {{.Tag}}\n" + ("digest: {{.Digest}}\n" if digests else "")
                + "image_id: {{.ID}}\ncreated_at: {{.CreatedAt}}\nvirtual_size: {{.Size}}\n")
    if fmt.startswith("table") and digests and "{{.Digest}}" not in fmt:
        return fmt + "\t{{.Digest}}"
    return fmt


def context(type_name: str, fields: dict) -> GoStruct:
    """A docker-cli formatter context: fields by name, `{{json .}}` as its MarshalJSON (sorted keys)."""
    return GoStruct(type_name, fields, json_keys=tuple(fields))


def _store(app: AppContext):
    from pyctr.image.store import ImageStore

    return ImageStore(app.config.paths)


# ---------------------------------------------------------------- pull / push

@click.command()
@click.argument("name")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("--platform", metavar="OS/ARCH[/VARIANT]", help="Pull this platform from a multi-platform image.")
@click.option("-a", "--all-tags", is_flag=True, help="Download all tagged images in the repository.")
@pass_app
def pull(app: AppContext, name: str, quiet: bool, platform: str | None, all_tags: bool) -> None:
    """Download an image from a registry."""
    from pyctr.image.pull import pull as do_pull
    from pyctr.image.pull import pull_all_tags
    from pyctr.image.reference import parse_reference

    if all_tags:
        pull_all_tags(app.config, name, platform=platform, quiet=quiet, out=sys.stdout)
        click.echo(parse_reference(name, default_tag=False).name)
        return
    given = parse_reference(name, default_tag=False)
    if not quiet and given.tag is None and given.digest is None:
        click.echo("Using default tag: latest")
    do_pull(app.config, name, platform=platform, quiet=quiet, out=sys.stdout)
    click.echo(str(parse_reference(name)))


@click.command()
@click.argument("name")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@pass_app
def push(app: AppContext, name: str, quiet: bool) -> None:
    """Upload an image to a registry."""
    from pyctr.image.push import push as do_push
    from pyctr.image.reference import parse_reference

    given = parse_reference(name, default_tag=False)
    if not quiet and given.tag is None and given.digest is None:
        click.echo("Using default tag: latest")  # docker-cli 20.10, as for pull
    do_push(app.config, name, quiet=quiet, out=sys.stdout)


# ---------------------------------------------------------------- images

def row_matches_filter(row: dict, expr: str) -> bool:
    """`docker images --filter`: dangling=true|false, reference=<glob>, label=<key>[=<value>]."""
    import fnmatch

    key, _, value = expr.partition("=")
    if key == "dangling":  # dockerd: an intermediate image (it has a child) is not dangling
        dangling = row["Tag"] == "<none>" and not row.get("intermediate")
        return dangling == (value.lower() in ("true", "1"))
    if key == "reference":
        name = f"{row['Repository']}:{row['Tag']}"
        return fnmatch.fnmatchcase(name, value) or fnmatch.fnmatchcase(row["Repository"], value)
    if key == "label":
        labels = (row["image"].config.get("config") or {}).get("Labels") or {}
        label, has_value, wanted = value.partition("=")
        return label in labels and (not has_value or labels[label] == wanted)
    raise click.UsageError(f"invalid filter '{key}'")


def _row_json(row: dict, no_trunc: bool) -> dict:
    image = row["image"]
    created = image.created
    ts = parse_rfc3339(created)
    created_at = go_time_text(ts) if ts else ""
    return {
        "Containers": "N/A", "CreatedAt": created_at, "CreatedSince": since(created),
        "Digest": row["Digest"], "ID": image.id if no_trunc else image.short_id,
        "Repository": row["Repository"], "SharedSize": "N/A", "Size": human_size(image.size),
        "Tag": row["Tag"], "UniqueSize": "N/A", "VirtualSize": human_size(image.size, 4),
    }


@click.command()
@click.argument("repository", required=False)
@click.option("-a", "--all", "show_all", is_flag=True, help="Show all images (default hides intermediate images).")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--digests", is_flag=True, help="Show digests.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("--format", "fmt", help="'json' or a Go template such as '{{.Repository}}:{{.Tag}}'.")
@click.option("-f", "--filter", "filters", multiple=True,
              help="Filter output (dangling=true|false, reference=GLOB, label=KEY[=VALUE]).")
@pass_app
def images(app: AppContext, repository: str | None, show_all: bool, quiet: bool, digests: bool, no_trunc: bool,
           fmt: str | None, filters: tuple[str, ...]) -> None:
    """List images."""
    if fmt:
        table.check(fmt)
    from pyctr.image.listing import image_rows

    rows = image_rows(_store(app), show_all, repository)
    for f in filters:
        rows = [r for r in rows if row_matches_filter(r, f)]
    if quiet:  # docker-cli: the table format `{{.ID}}`, one line per row (an id twice for two tags)
        for r in rows:
            click.echo(r["image"].id if no_trunc else r["image"].short_id)
        return
    fmt = image_format(fmt, digests)
    contexts = [context("*formatter.imageContext", _row_json(r, no_trunc)) for r in rows]
    click.echo(table.write(fmt, contexts, IMAGE_HEADERS), nl=False)


# ---------------------------------------------------------------- rmi / tag

@click.command()
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents.")
@pass_app
def rmi(app: AppContext, names: tuple[str, ...], force: bool, no_prune: bool) -> None:
    """Remove one or more images."""
    from pyctr.errors import PyctrError
    from pyctr.image.remove import remove_image
    from pyctr.runtime.usage import image_users

    store = _store(app)
    failed = 0
    for name in names:
        try:
            in_use = image_users(app.config.paths)
            for line in remove_image(store, name, force, prune=not no_prune, in_use=in_use):
                click.echo(line)
        except PyctrError as e:
            click.echo(f"Error: {e.message}", err=True)
            failed += 1
    if failed:
        sys.exit(1)


@click.command()
@click.argument("source")
@click.argument("target")
@pass_app
def tag(app: AppContext, source: str, target: str) -> None:
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    from pyctr.image.reference import parse_reference

    store = _store(app)
    image = store.resolve(source)
    store.tag(parse_reference(target), image.id)


# ---------------------------------------------------------------- inspect / history / prune

@click.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format the output using a Go template.")
@pass_app
def inspect(app: AppContext, names: tuple[str, ...], fmt: str | None) -> None:
    """Display detailed information on one or more images."""
    from pyctr.commands.container import inspect_template
    from pyctr.errors import PyctrError
    from pyctr.output import template

    compiled = inspect_template(fmt)
    store = _store(app)
    docs, failed = [], 0
    for name in names:
        try:
            docs.append(store.resolve(name).inspect())
        except PyctrError as e:
            click.echo(f"Error: {e.message}", err=True)
            failed += 1
    if compiled:
        text, errors = template.inspect_lines(fmt, docs)
        click.echo(text, nl=False)
        for error in errors:
            click.echo(f"Error: {error}", err=True)
        failed += len(errors)
    else:
        click.echo(json.dumps(docs, indent=4))
    if failed:
        sys.exit(1)


def history_rows(image, no_trunc: bool, human: bool = True) -> list[dict]:
    """config.history newest first, with layer sizes matched to the non-empty entries."""
    cfg = image.config
    history = [h for h in cfg.get("history") or [] if isinstance(h, dict)]
    sizes = [layer.diff_size for layer in image.layers]
    rows, layer_index = [], 0
    for h in history:
        size = 0
        if not h.get("empty_layer") and layer_index < len(sizes):
            size = sizes[layer_index]
            layer_index += 1
        rows.append({"CreatedBy": h.get("created_by", ""), "Created": h.get("created", ""),
                     "Size": size, "Comment": h.get("comment", "")})
    if not history:
        rows = [{"CreatedBy": "", "Created": cfg.get("created", ""), "Size": s, "Comment": ""} for s in sizes]
    from pyctr.image.listing import history_image_ids

    rows.reverse()
    ids = history_image_ids(image, len(rows))
    for i, r in enumerate(rows):
        shown = ids.get(i)
        r["ID"] = (shown if no_trunc else shown[7:19]) if shown else "<missing>"
        created_by = r["CreatedBy"].replace("\t", " ").replace("\n", " ")
        if not no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        r["CreatedByShown"] = created_by
        r["CreatedSince"] = since(r["Created"]) if human else r["Created"]
        r["SizeShown"] = human_size(r["Size"]) if human else str(r["Size"])
    return rows


@click.command()
@click.argument("name")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("-H", "--human", type=bool, default=True, show_default=True,
              help="Print sizes and dates in human readable format.")
@click.option("--format", "fmt", help="'json' or a Go template.")
@pass_app
def history(app: AppContext, name: str, no_trunc: bool, quiet: bool, human: bool, fmt: str | None) -> None:
    """Show the history of an image."""
    rows = history_rows(_store(app).resolve(name), no_trunc, human)
    if quiet:
        for r in rows:
            click.echo(r["ID"])
        return
    if not fmt or fmt == "table":
        fmt = HISTORY_FORMAT if human else HISTORY_FORMAT_NON_HUMAN
    contexts = [context("*image.historyContext", {
        "ID": r["ID"], "CreatedSince": r["CreatedSince"], "CreatedAt": r["Created"], "CreatedBy": r["CreatedByShown"],
        "Size": r["SizeShown"], "Comment": r["Comment"]}) for r in rows]
    click.echo(table.write(fmt, contexts, HISTORY_HEADERS), nl=False)


@click.command()
@click.option("-a", "--all", "all_unused", is_flag=True, help="Remove all unused images, not just dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, hidden=True)
@pass_app
def prune(app: AppContext, all_unused: bool, force: bool, filters: tuple[str, ...]) -> None:
    """Remove unused images."""
    if not force:
        what = ("all images without at least one container associated to them" if all_unused
                else "all dangling images")
        click.echo(f"WARNING! This will remove {what}.")
        if not click.confirm("Are you sure you want to continue?", default=False):
            return
    from pyctr.image.remove import prune_images
    from pyctr.runtime.usage import image_users

    lines, freed = prune_images(_store(app), all_unused, in_use=image_users(app.config.paths))
    if lines:
        click.echo("Deleted Images:")
        for line in lines:
            click.echo(line)
        click.echo("")
    click.echo(f"Total reclaimed space: {human_size(freed)}")


# ---------------------------------------------------------------- save / load

@click.command()
@click.argument("names", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file, instead of STDOUT.")
@pass_app
def save(app: AppContext, names: tuple[str, ...], output: str | None) -> None:
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    from pyctr.errors import UsageError
    from pyctr.image.archive import save_images

    if output is None and sys.stdout.isatty():
        raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    store = _store(app)
    if output is None:
        save_images(store, list(names), sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        from pathlib import Path

        target = Path(output)
        tmp = target.with_name(f".{target.name}.partial")
        try:
            with open(tmp, "wb") as f:
                save_images(store, list(names), f)
            tmp.replace(target)
        except OSError as e:  # Docker: "failed to save image: invalid output path ..."
            raise UsageError(f"failed to save image: cannot write {output}: {e.strerror or e}") from None
        finally:
            tmp.unlink(missing_ok=True)


@click.command()
@click.option("-i", "--input", "input_path", type=click.Path(dir_okay=False),
              help="Read from tar archive file, instead of STDIN.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
@pass_app
def load(app: AppContext, input_path: str | None, quiet: bool) -> None:
    """Load an image from a tar archive or STDIN."""
    from pyctr.errors import ClientError, UsageError
    from pyctr.image.archive import load_archive

    if input_path is None and sys.stdin.isatty():
        raise UsageError("requested load from stdin, but stdin is empty")
    store = _store(app)
    if input_path:
        try:
            f = open(input_path, "rb")  # noqa: SIM115 - closed by the with below
        except OSError as e:  # docker-cli's own words, exit 1 (not a flag error)
            raise ClientError(f"open {input_path}: {(e.strerror or str(e)).lower()}") from None
        with f:
            lines = load_archive(store, f)
    else:
        lines = load_archive(store, sys.stdin.buffer)
    for line in lines:  # -q hides only the progress: Docker still prints "Loaded image: ..."
        click.echo(line)


# ---------------------------------------------------------------- login / logout

@click.command()
@click.argument("server", required=False)
@click.option("-u", "--username", help="Username.")
@click.option("-p", "--password", help="Password.")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
@pass_app
def login(app: AppContext, server: str | None, username: str | None, password: str | None,
          password_stdin: bool) -> None:
    """Log in to a registry (credentials go to Docker's config.json)."""
    from pyctr.errors import UsageError
    from pyctr.image.auth import normalize_server, store_credentials
    from pyctr.image.push import login_check

    if password and password_stdin:
        raise UsageError("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise UsageError("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", err=True)
    if (not username or not password) and not sys.stdin.isatty():
        raise UsageError("Cannot perform an interactive login from a non TTY device")
    if not username:
        username = click.prompt("Username", err=True)
    if not password:
        password = click.prompt("Password", hide_input=True, err=True)
    if not username or not password:
        raise UsageError("Error: Username and password are required" if not username else "password is required")
    host = normalize_server(server) if server else "docker.io"
    login_check(app.config, host, username, password)
    path = store_credentials(server, username, password)
    click.echo(f"WARNING! Your password will be stored unencrypted in {path}.", err=True)
    click.echo("Login Succeeded")


@click.command()
@click.argument("server", required=False)
def logout(server: str | None) -> None:
    """Log out from a registry."""
    from pyctr.image.auth import remove_credentials, server_key

    key = server_key(server)
    if remove_credentials(server):
        click.echo(f"Removing login credentials for {key}")
    else:
        click.echo(f"Not logged in to {key}")


# ---------------------------------------------------------------- system df

def df_row(usage) -> dict[str, str]:
    """One `system df` row as docker-cli's diskUsageContext shows it (the images' reclaimable with its percent)."""
    reclaimable = human_size(usage.reclaimable)
    if usage.kind == "Images":
        reclaimable += f" ({int(100 * usage.reclaimable / usage.size)}%)" if usage.size else " (0%)"
    return {"Type": usage.kind, "TotalCount": str(usage.total), "Active": str(usage.active),
            "Size": human_size(usage.size), "Reclaimable": reclaimable}


@click.command()
@click.option("-v", "--verbose", is_flag=True, hidden=True)
@click.option("--format", "fmt", help="'json' or a Go template.")
@pass_app
def df(app: AppContext, verbose: bool, fmt: str | None) -> None:
    """Show pyctr disk usage."""
    from pyctr.runtime.usage import disk_usage

    rows = [df_row(usage) for usage in disk_usage(app.config.paths, _store(app))]
    contexts = [context("*formatter.diskUsageContext", r) for r in rows]
    click.echo(table.write(fmt if fmt and fmt != "table" else DF_FORMAT, contexts, DF_HEADERS), nl=False)


# ---------------------------------------------------------------- the `image` group

@click.group()
def image() -> None:
    """Manage images."""


def _alias(command: click.Command, name: str) -> click.Command:
    return click.Command(name, params=command.params, callback=command.callback, help=command.help,
                         context_settings=command.context_settings)


image.add_command(_alias(images, "ls"))
image.add_command(_alias(images, "list"))
image.add_command(inspect)
image.add_command(_alias(rmi, "rm"))
image.add_command(prune)
image.add_command(tag)
image.add_command(history)
image.add_command(pull)
image.add_command(push)
image.add_command(save)
image.add_command(load)
