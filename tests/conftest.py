pytest_plugins = ["tests.support.kafka", "tests.support.postgres", "tests.support.s3", "tests.support.stores"]
