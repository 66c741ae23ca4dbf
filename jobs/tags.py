"""Tags: evaluate the rules in conf/tags.yaml and merge third-party DMP tags into
cradle_gold.member_tags (with history).

    spark-submit --master yarn --deploy-mode cluster \\
      --py-files dist/cradle-0.1.0-py3-none-any.whl --jars "$(ls .jars/*.jar | paste -sd,)" \\
      --archives dist/conf.zip#conf --conf spark.yarn.appMasterEnv.CRADLE_CONF_DIR=conf \\
      jobs/tags.py --env cluster --lake s3a://brand-lake/cradle --run-date 2026-03-01
"""

import sys

from cradle.cli import main_for_job

if __name__ == "__main__":
    sys.exit(main_for_job("tags"))
