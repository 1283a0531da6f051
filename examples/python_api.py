"""The release workflow from Python: fit, sample, release and verify (UCI Adult, CC BY 4.0)."""

from pathlib import Path

import dpsynth
from dpsynth.bundle.write import release, verify_bundle
from dpsynth.tabular.encoding import read_frame

here = Path(__file__).parent / "adult"
schema = dpsynth.load_schema(here / "schema.yaml")            # public: written by hand
data = read_frame(here / "adult.csv", schema).sample(5000, random_state=0)

synth = dpsynth.fit(data, schema, mechanism="mst", epsilon=1.0, delta=1e-9)
print(synth.privacy.epsilon, synth.estimated_rows)           # the guarantee, a DP row count
print(synth.sample(5, seed=1))                                  # post-processing: free

result = release(data, schema, mechanism="mst", epsilon=1.0, delta=1e-9, seed=1,
                 out="build/python-api-release", overwrite=True,
                 internal_report="build/python-api-evaluation")  # confidential, outside the bundle
print(result.bundle, result.rows, result.epsilon)
print(verify_bundle(result.bundle).ok)                          # True
