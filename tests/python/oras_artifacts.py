"""Push and pull OCI artifacts with oras-py, the Python SDK of ORAS.

The end-to-end test tests/tests/oras.rs runs this script with the Python of
the tests' virtual environment, against a registry on 127.0.0.1 over plain
HTTP, and checks what it stored through the registry's API. Each command
prints one JSON object as the last line of standard output.

oras-py (0.2.43) has no `artifactType` parameter: it pushes an image
manifest whose config descriptor carries the artifact's media type, which
the referrers API then reports as `artifactType`.
"""

import argparse
import json
import os
import sys

import oras.defaults
import oras.oci
import oras.provider


def push(client, arguments):
    """Push the files as one artifact, with an optional subject."""
    subject = None
    if arguments.subject:
        subject = oras.oci.Subject(**json.loads(arguments.subject))

    # oras-py reads "PATH:MEDIA_TYPE" for the config and for each file.
    response = client.push(
        target=arguments.target,
        files=[f"{path}:{arguments.file_type}" for path in arguments.file],
        manifest_config=f"{arguments.config}:{arguments.artifact_type}",
        subject=subject,
        disable_path_validation=True,
        do_chunked=arguments.chunk_size is not None,
        chunk_size=arguments.chunk_size or oras.defaults.default_chunksize,
        quiet=True,
    )
    return {
        "status": response.status_code,
        "digest": response.headers.get("Docker-Content-Digest"),
        "location": response.headers.get("Location"),
        "subject": response.headers.get("OCI-Subject"),
    }


def pull(client, arguments):
    """Pull the artifact's files into the output directory."""
    files = client.pull(target=arguments.target, outdir=arguments.outdir)
    return {"files": sorted(os.path.relpath(path, arguments.outdir) for path in files)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    push_parser = commands.add_parser("push", help="push files as an artifact")
    push_parser.add_argument("--target", required=True, help="HOST:PORT/REPOSITORY:TAG")
    push_parser.add_argument(
        "--artifact-type", required=True, help="media type of the config descriptor"
    )
    push_parser.add_argument("--config", required=True, help="path of the config blob")
    push_parser.add_argument(
        "--file", action="append", required=True, help="path of a layer; may repeat"
    )
    push_parser.add_argument("--file-type", required=True, help="media type of every layer")
    push_parser.add_argument(
        "--subject", help="JSON descriptor (mediaType, digest, size) of the subject"
    )
    push_parser.add_argument(
        "--chunk-size",
        type=int,
        help="upload blobs in PATCH requests of this many bytes (default: one PUT)",
    )

    pull_parser = commands.add_parser("pull", help="pull an artifact's files")
    pull_parser.add_argument("--target", required=True, help="HOST:PORT/REPOSITORY:TAG")
    pull_parser.add_argument("--outdir", required=True, help="directory for the files")

    arguments = parser.parse_args()
    # insecure=True makes oras-py speak plain HTTP, the only protocol of
    # the registry under test.
    client = oras.provider.Registry(insecure=True)
    if arguments.command == "push":
        result = push(client, arguments)
    else:
        result = pull(client, arguments)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
