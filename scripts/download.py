"""Download one URL chunk of a dataset with img2dataset (rule ``download``): the chunk's rows of ``urls.parquet``
(``uid`` hash modulo ``n_chunks``), a first pass, then a retry pass at each failed row's next duplicate URL, into the
chunk folder with its ``_summary.json``. How (chunking, storage options, opt-outs, timeouts, the loopback server of
the offline demo, the folder layout) is documented in ``lib.data.chunk_download``.
"""

import logging

from _helpers import configure_logging, rule_entry
from lib.data.chunk_download import read_chunk_urls, run_download

log = logging.getLogger("entitynet.download")


def main(snakemake) -> None:
    configure_logging(snakemake)
    p = snakemake.params
    urls = read_chunk_urls(snakemake.input.urls, int(snakemake.wildcards.chunk), int(p.n_chunks))
    summary = run_download(urls, int(snakemake.wildcards.chunk), int(p.n_chunks), snakemake.output.chunk_dir,
                           dict(p.options), int(snakemake.threads), float(p.timeout_s))
    log.info("chunk summary: %s", {k: v for k, v in summary.items() if k not in ("first", "retry")})


if __name__ == "__main__":
    rule_entry(main, globals())
