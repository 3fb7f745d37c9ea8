# Init container "download": fill the model cache (HF_HOME) before the engine starts, so that a
# gated model, a wrong revision or a full disk fails here, named, rather than as a crash-looping
# engine. Usage: python3 -c "$(cat download.py)" REPO_ID REVISION [PATTERN...]
# Runs in the engine's own image (vLLM, SGLang and TGI ship huggingface_hub), as the engine's user,
# with the model's HF token in HF_TOKEN. Safe to run in several replicas at once: huggingface_hub
# locks each file it writes, and files already in the cache are not fetched again.
import sys


def main(argv):
    repo_id, revision, patterns = argv[1], argv[2] or None, argv[3:] or None
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.utils import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError
    except ImportError as exc:
        print("download: this image has no huggingface_hub (%s); disable models[].download" % exc, file=sys.stderr)
        return 2
    print("download: %s@%s into the model cache" % (repo_id, revision or "default branch"), flush=True)
    try:
        path = snapshot_download(repo_id=repo_id, revision=revision, allow_patterns=patterns)
    except GatedRepoError:
        print("download: %s is gated: set the model's hfToken to a token granted access to it" % repo_id, file=sys.stderr)
        return 1
    except RevisionNotFoundError:
        print("download: %s has no revision %r" % (repo_id, revision), file=sys.stderr)
        return 1
    except RepositoryNotFoundError:
        print("download: no repository %s (or it is private: set the model's hfToken)" % repo_id, file=sys.stderr)
        return 1
    except OSError as exc:
        print("download: %s: %s (is the cache volume large enough?)" % (repo_id, exc), file=sys.stderr)
        return 1
    print("download: ready in %s" % path, flush=True)
    return 0


sys.exit(main(sys.argv))
