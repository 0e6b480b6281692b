from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        CREATE TABLE IF NOT EXISTS `audit_log` (
    `id` BIGINT NOT NULL PRIMARY KEY AUTO_INCREMENT,
    `at` DATETIME(6) NOT NULL COMMENT 'when the request arrived (UTC)',
    `method` VARCHAR(16) NOT NULL,
    `route` VARCHAR(255) NOT NULL,
    `status` SMALLINT NOT NULL,
    `user_id` CHAR(36),
    `latency_ms` DOUBLE NOT NULL,
    `client` VARCHAR(64),
    `request_id` VARCHAR(64) NOT NULL,
    KEY `idx_audit_at` (`at`),
    KEY `idx_audit_user` (`user_id`, `id`),
    KEY `idx_audit_route` (`route`, `id`)
) CHARACTER SET utf8mb4 COMMENT='What happened (method, route template, status), who asked, how long it took.';"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        DROP TABLE IF EXISTS `audit_log`;"""


MODELS_STATE = (
    "eJztXG1z4jgS/isqPiVV3LyQt7nM1VWRhJ1ll8AcLzd7u9lyhC3AFyMxkhyGmpv/fi3Z+A"
    "2b2ITMAOsvqSD1I8lPyy11q+WvlSmziCNe3dhihqU56bJ55RJ9rVA8JfBPWnUVVfBsFlaq"
    "AomHjpb/Lxsali+sJYdCcmxKqBthRxAosogwuT2TNqMK0Z8QxFw5ZF8uEUaAR1hKMp1JJK"
    "TtOEgyNCRo5g4dW0yIVUVzboMARTZFErDQPBXQAzQHv7FEU2wRZEtkueSVGoLFTBiDTccv"
    "3tsdvaOqA87myBYIyCGSWGlQTkzGLRgTuv/sEpdY969QPeiWoyMFEO5wCp2D1B3lBOSERI"
    "zDsDlx8OIYmQ62p0J1PlygKXvUzeFHbDtKGwaW92iGAUNhOC61iIKOOBETdK+h99U7KhiS"
    "c+a1KBAljyDlD0MPWsA80M8Dj8qoSd4jTBH5MrM5PJhuRT0ptEoQHmObasZdasNoDcnGBN"
    "rgwPsff+iZYVt6TniMV/78E37YMLAvRCiZr5WRTRxL/1+JPkdFCUKnMHYB7GkBVbScpLb1"
    "JZh0RgDU83Ix0xIV3QBoQP/4psCzB0N3F5vu3gB1ubHEXtnjJpU/aVk1nYaGyRx3SkP52U"
    "JOGA0ANpWqdEwo4RgmAJRJ7qqpT13H8d+U5dvgcRWKeHxEMBYZYddRL5BCewMIyyqG0e70"
    "jV6jbxiVlZdriYi8AX6RCTQCHTBUoQkYqyH87e+12snJRe3Nyfm7s9OLi7N3b96BrB7vat"
    "XFN28wIVteU5qz5odmu68GxODt90yDKvimMVhiI1R1yH44ReIaGAyaN+n8h4iEDlzXtl4p"
    "XFITS97XqWJZEOoitF3fQRlreL3+ud49Ojk/1k/MhBxzXakZ0uSGZC7fshU2MydzBPH0jN"
    "4DHv1JXXt7enH67uT8NJjLQcm6KbycriGjEouH1Pl5PcE8ndIIJEEpDHQfKZ3iL4ZD6FhO"
    "4Of56Rr+/l3v6tl6fnoctwNtv6amq+IUwyqq7P0KwzdAkbSnJJ3lEJUg2fJhr5b/7CHlay"
    "juN28bvX799qNqfirEZ0dzVe83VE1Nly4SpUfnCXUEjaBPzf7PSP1Ev3fajaSJCeT6v1fU"
    "mLArmQFbCwNbUU6WxcuiuE2KLuoFlZzElqreaVXrvWERUxkANjKU/mZpVzT50nYSeieiwN"
    "IeyH+/hf3NnqzqDrhIBuGc8VU+++AzpBMaRx3ClF1nfBq/9WN2Zzk1j27rvx3HbE+r0/6w"
    "FI9M5etW5yrBu8mJ4maDlSCOLNeBnVsHlHs9eoi4eKpgiM2HOeaWsVLDaixLdrVqWpsmSz"
    "DFY60kxaYapx+0+oUNG4+EyoyYVrS6+lRMiyhJkS+i1aEEafmqH1BxZ2oyWip448eE3iNb"
    "/bQIF56oQNjkTAgVkhJoBJIjQiyxGsDaduNPxGoE+bw+TsPm8Gr5wvA3R6TGG5KhgWWMpo"
    "zR/IVjNOrtyr+J86XL2ExabEaxkeptNKg71Xw2YQCYmmR1c+xjdzlCU+kNrm6b/X7j5nJ5"
    "LkCsO/qvQWOgirxDhDsKq3XXk5GYa4mP3c6HbqPXu0QzztRUFHe02+h3/9Nsf7hEnEi+0A"
    "cMvcH1daNx47VvmrA+KPRP9WZLFY3A91a/r+vt60bL6Dag457uyFSUOoZ/PhHKtMJKjfzU"
    "6f7a6BqtTq9/ieaMP8Cq4cDbkVzg8vhTtTz+VC3bn6qt+FNlsHTbL+QGAZ5yO7+b2/lYgB"
    "b2BauK/aXXaWeEZn35pFptU6L/IccW+/iurFGoYmK9q5z0ihNKUg0kXeXoHjvvriuKKfdd"
    "QOjuOKXZ/mgeVzSnE6ryEEyXc/C10KNN5oiNEAPfEVqowrK/TGsYcTZFtgwcxZRcBRgNoT"
    "pXAWqm6SkVL9ZTqnsa9zlhGWbQgbkwHsgiv7MajyLlc10V/Z7javjwNQ6seoMz+obdmSRb"
    "GETQTr4hbNxb4Yd9/gM+9WiFwgPZZnL7BvLpGEHlHyOXejNe96T+nP6zsnMWs7omDJDtb2"
    "UcQOyBj7Xh6c7bN29yuCMglemP6Lr4kq8duiIEB4CS4XwMBwZmk5BBAN5ltisfG+0b7eb7"
    "y+pqvKA7aLe9QIBLqZZ4bmwg7vdv4t2/Pc+j7KQTFNH1eVLVy8jHqrZ7U+w4mT5+FHcwB6"
    "cntYvzwLlXP9b59b3bequ16txPgRTY3q7ymX1gGoGUp6XFT0v3JED19mXn7taiUzNuM/BL"
    "FsUtQogrLUKUULxwGE7ZemeHhiKQMjr0jOgQVKnxF2A+RDyL+P0xyS/Ce0bOUDbtWelCJe"
    "tlLPTHnUHrTLZiB9FRyMGsglvbWyRPRFeJvWLMIZhmZLelwBMkDwH/UiwHJd93wl51Oq2Y"
    "rbhqJnfFg9urBjh+ek6DkC1JOv8/4JrGjtnkl84+TsbcCzCdAj08xmtnZ3kSFM7OsjMUVF"
    "1ym6cNgjHBYlKE8STu8Oje/gQvc5M3seF7l8zgp85uoOY4slTzTqvZz4XbQM1x5BbUvGN2"
    "9JC0PLKp/mTDBmpOQEs975qedyR3ZyB0BspK5o4ur67L23FBImfiTp0ibJrMpfI9wki4M8"
    "IVGglCdO4MX6jMmtU0nAK4lKSaRNZMmV3xQ7MryBTbTpFNfgDYznn0j73nEtvcn9TynP2D"
    "VOb2XtfF9/fKFwJzP8NCzBkvFCpIge5yDsDGGRe5cuyV2Jqci9U8e1sYKtfvMeXoeG1QLI"
    "b7jtGw5bzf22AYEBcsBcU5j0HLIGQx3mHJtaGXovHfBLJkvQDrZdwm277DA1od6ix8q7Yn"
    "LoFvgHfVI6i7lp11vzyoW+sZYCVlOGyczzv4pL45ONGJ8sRCR1PYwDOrijhzJUEq4ceBKV"
    "lV1/+kK46raD5hCIsH9SXDCZsjh9Gx+mCgZOxh1YXYZuPhtxAV2BZesr/fBjq6f41n9uvH"
    "t69Vsvfrr94d4W/30ChlUstyPEczLCdVhKkFpWgCE5jw6h01oX0bxgHvFTg13vDV9fchsx"
    "aqJ30t/oHMJKhLXURgI32fQGUlIrC7D8o9IvDCw7MSTnJ6RPGPE+b6JKGnWs+i5EubV0tt"
    "obv0XhfLFTpfJ1ojRbsIQOVt/X26rX/4tzAr8wnxbhItP5GKOQdHAezXoH99nLRxhxkfi+"
    "fmKqtdxKUNEYfoyW49mzwwhblPYJeAA6T3RY66vQ3GKsXrc3ND1CFdyN9Gcm5kW5E3chuB"
    "PCN8uz/HIIUS5rz0lWnKDP3JYTgzaS4KS5A6Urg9nKRrGL3pDK5aDfSx27hu9pp+JmiwUu"
    "rKuDvfbdRbSX/esQlN2cKs+4rkElHmuTyd57LMDSqWLRdHHeCith2idyVEQbhtTippAQqv"
    "pro2PBHKPBWbyCZ7y+eNfxXf8ZkZydle4SPhyt0v8s5HIAf4wr/ILla9VAUY9sUPkN0Xub"
    "4NPcrUvUH2/ZsIpLxwVvAKzg9dzL79HyJbbd8="
)
