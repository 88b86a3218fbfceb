#!/usr/bin/env bash
# Build and push the Dataflow worker image with Cloud Build (run from anywhere in the repository).
#   dataflow/build_image.sh us-docker.pkg.dev/PROJECT/REPO/cm3-data-worker:0.1.0
#   TORCH_INDEX=https://download.pytorch.org/whl/cu126 dataflow/build_image.sh IMAGE   # GPU workers
set -euo pipefail
image="${1:?usage: dataflow/build_image.sh IMAGE_URI}"
torch_index="${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
cd "$(git rev-parse --show-toplevel)"
# the worker's Beam SDK image is the lock's apache-beam, so launcher and workers run one version
beam_version="$(sed -n 's/^apache-beam==//p' dataflow/constraints.txt)"
if command -v docker >/dev/null && [ "${USE_CLOUD_BUILD:-1}" = 0 ]; then
  docker build -f dataflow/Dockerfile --build-arg "TORCH_INDEX=$torch_index" \
    --build-arg "BEAM_VERSION=$beam_version" -t "$image" . && docker push "$image"
else
  cat > /tmp/cm3-cloudbuild.yaml <<YAML
steps:
- name: gcr.io/cloud-builders/docker
  args: [build, -f, dataflow/Dockerfile, --build-arg, "TORCH_INDEX=$torch_index",
         --build-arg, "BEAM_VERSION=$beam_version", -t, "$image", .]
images: ["$image"]
YAML
  gcloud builds submit --config /tmp/cm3-cloudbuild.yaml .
fi
