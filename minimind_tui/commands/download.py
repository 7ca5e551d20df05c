"""`minimind-tui download`: list and fetch the recipe's datasets, tokenizer and pretrained weights."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "download", help="list or fetch MiniMind's datasets, tokenizer and weights (resumable, verified)",
        description="Fetch files of the MiniMind recipe from ModelScope (Hugging Face as the fallback): datasets "
                    "into ./dataset, weights into ./out, the tokenizer into ./model/minimind_tokenizer "
                    "(where `train` looks); minimind-3's weights into ./out/minimind-3 and its tokenizer into "
                    "./model/minimind-3_tokenizer. An interrupted download resumes from its .part file; failures are "
                    "retried with back-off; files are verified before an atomic rename. Without NAMEs, lists what is "
                    "available.")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="file names, shell patterns (sft_*.jsonl, minimind-3/*) or groups: tokenizer, "
                        "quickstart, lora, tokenizer-3, quickstart-3")
    p.add_argument("--list", action="store_true", help="list the catalogue and what is already downloaded")
    p.add_argument("--dest", help="put every file into this folder instead of ./dataset, ./out")
    p.add_argument("--source", choices=["modelscope", "hf"], default="modelscope",
                   help="which host to try first (default: modelscope; the other is the fallback)")
    p.add_argument("--mirror", metavar="URL", help="fetch from this base URL instead (files are URL/NAME), "
                                                   "e.g. a local or corporate mirror")
    p.add_argument("--retries", type=int, default=4, help="failed attempts in a row before giving up on a host")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from minimind_tui.interop.catalogue import CATALOGUE, select

    if args.list or not args.names:
        _print_catalogue(CATALOGUE, args)
        return 0
    entries = select(args.names)
    for entry in entries:
        _download_one(entry, args)
    return 0


def _print_catalogue(entries, args) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="minimind-tui download NAME…", title_justify="left")
    for column in ("name", "size", "goes to", "what"):
        table.add_column(column, overflow="fold")  # a name is what the user types: shown whole
    for e in entries:
        folder = e.destination(args.root, args.dest)
        present = (folder / e.file).exists()
        table.add_row(e.name + (" ✓" if present else ""), e.approx_size, str(folder), e.description)
    console = Console()
    console.print(table)
    console.print("groups: tokenizer, quickstart (pretrain_hq + sft_mini_512 + tokenizer), lora, tokenizer-3, "
                  "quickstart-3 (pretrain_t2t_mini + sft_t2t_mini + minimind-3 tokenizer);  ✓ = already downloaded")


def _download_one(entry, args) -> None:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    from minimind_tui.interop.download import download

    folder = entry.destination(args.root, args.dest)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(entry.name, total=None)

        def on_progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        path = download(entry, folder, urls=entry.urls(args.source, args.mirror), progress=on_progress,
                        retries=args.retries)
    checks = ", ".join(c for c, known in (("size", entry.size), ("sha256", entry.sha256)) if known)
    print(f"{path}" + (f" (verified: {checks})" if checks else ""))
