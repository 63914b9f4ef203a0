"""Rule ``resize_shards`` (opt-in, ``models.<name>.stored_short_side``): the downloaded shards at a smaller stored
short side, same layout and contract. The work is :func:`lib.data.shard_resize.resize_shards` (img2dataset's
resizer, configured as the download configures it)."""

from _helpers import configure_logging, rule_entry
from lib.data.shard_resize import resize_shards


def main(snakemake) -> None:
    configure_logging(snakemake)
    resize_shards(snakemake.input.shards_dir, snakemake.output.shards_dir, int(snakemake.params.short_side),
                  int(snakemake.params.quality), max(1, int(snakemake.threads)))


if __name__ == "__main__":
    rule_entry(main, globals())
