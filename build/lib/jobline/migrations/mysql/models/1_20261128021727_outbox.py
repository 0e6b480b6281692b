from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        CREATE TABLE IF NOT EXISTS `job_dispatch` (
    `id` BIGINT NOT NULL PRIMARY KEY AUTO_INCREMENT,
    `job_id` CHAR(36) NOT NULL,
    `attempt` INT NOT NULL,
    `task_id` VARCHAR(64) NOT NULL,
    `due_at` DATETIME(6) NOT NULL,
    `available_at` DATETIME(6) NOT NULL,
    `claim` VARCHAR(64),
    `tries` INT NOT NULL,
    `last_error` LONGTEXT,
    `created_at` DATETIME(6) NOT NULL,
    UNIQUE KEY `uid_job_dispatc_job_id_589b67` (`job_id`, `attempt`),
    KEY `idx_dispatch_available` (`available_at`)
) CHARACTER SET utf8mb4 COMMENT='The outbox: a job attempt still to be published, written in the transaction that made it due.';"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        DROP TABLE IF EXISTS `job_dispatch`;"""


MODELS_STATE = (
    "eJztXGtz27YS/SsYfUpmfD2O/EqdO52RbTZVK0upHrcvd2iIhCRek4BCgJY1af57FxDFN2"
    "VSlmLJ5RePCewBwLPLBXax9peaw0xi88Nri0+xMCZdNqtdoC81ih0Cv2R1H6Aank7DTtkg"
    "8NBW8v9nQ930hZXkkAsXGwL6RtjmBJpMwg3XmgqLUYnoTwhinhiyxwuEEeARFoI4U4G4sG"
    "wbCYaGBE29oW3xCTEP0My1QIAiiyIBWBiecpgBhoNnLJCDTYIsgUyPHMolmMyANVh0vPXZ"
    "buktlRO4bIYsjoAcIoiZBXWJwVwT1oTuPnvEI+bdIWoE07rojQRwb+jA5CB1S10Cclwg5s"
    "KyXWLj+Vtk2NhyuJx8OEcOe1DD4Qds2VIbOhZ3aIoBQ2E5HjWJhI5cwifoTkHvDm4pZ0jM"
    "2GJEjih5ACl/GWrRHOxAvQ+8KqMG+YAwReRxarnwYmoU+aYwKkF4jC2qGPeoBavVBRsTGM"
    "MF3v/8U1mGZSqbWDBe++sveLBgYY+ES5kvtZFFbFP9Xou+R00KwqSwdg7sKQHZtDRSy3wM"
    "jE4PgMou51MlUVMDgAbUw1cJnt7rarqYuS8WqNr1JfbSGjep+EHJSnMa6gazPYeG8tO5mD"
    "AaACwqZOuYUOJiMABoE64nTZ96tu1/KcuvYcFVKLLgI4IxyQh7tvyAJHqxgLCtpuvtTl/v"
    "aX1dr6U+riUi8gX4TQbQCHTAUrkiYCyX8J/v6vXj4/P60fHZ+9OT8/PT90fvQVatN911/n"
    "WxmJCtxVCKs+bHZrsvF8Tg61+4BtnwVWGwwHqo6pD90ETiGhgMmtfZ/IeIhA48zzIPJS6p"
    "iSXvq1SxbAh1Efqub6CMFbxe/djovjk+e6vemHExdlWnYkiRG5K5/MpSbOYacwTxtEXvAY"
    "++UdffnZyfvD8+OwlsOWhZZcJLcw0ZFZjfZ9rn1QS72ZRGIAlKYaH7SKmDH3Wb0LGYwOPZ"
    "yQr+/tfoKms9O3kb9wNtv6euuuIUwy4q/X2K4WugSFgOyWY5RCVINn3Y4fKXPaR8BcX95o"
    "3W6zduPsnhHc4/24qrRl+TPXXVOk+0vjlLqCMYBP3a7P+I5CP6o9PWki4mkOv/UZNrwp5g"
    "OhwtdGxGOVk2L5viPim6qZdUchJbqXqnVa3OhmVcZQBYy1H6h6Vd0eS2/STMTniJrT2Q/3"
    "Yb+9Ge7Oo2hEg6cV3mpvnsQ8yQTWgc9RpMdpXz0X7rx/zO0jTf3DR+exvzPa1O++NSPGLK"
    "V63OZYJ3wyWSmzV2gjiy2gd2bh+Q4fXoPhLiyYYhNu5n2DX1VA+rszzZdJdTd5ItmOKxUp"
    "JkU67TT1r9xIbaA6EiJ6cV7T54KqdFpCQvltHqUIKU/IGfUPGm0hhNmbzxc0IfkCUfTeLy"
    "hShH2HAZ5zIlxdEIJEeEmDydwNr04E/kajj5vDpPw2bwafnC8LNApmaxJF0BqxxNlaP5F+"
    "do5NdV/BDnS1e5mazcjGQjM9rQqOcoPpuwAEwNkj4c+9hdztDUeoPLm2a/r11fLO8FiHlL"
    "fxloA9m0uES4pbBbdxcyArtK4lO387Gr9XoXaOoyaYr8lna1fvf3ZvvjBXKJcOfqgqE3uL"
    "rStOvF+IYB+4NE/9BotmTTCGJv+XzVaF9pLb2rwcQ9NZEhKbV1/34ilGmFnQr5a6f7s9bV"
    "W51e/wLNmHsPu4YNX0dygysST9WLxFP1/HiqnoqnqmTppj/INRI81XF+N4/zsQQtnAvSiv"
    "2p12nnpGZ9+aRaLUOgv5Ft8X38VlYoVDKxOlRORsUJJckBkqFy9Ixd9NQVxVTnLiB0d4LS"
    "/Hi0SChaMAiVdQiG57oQa6EHi8wQGyEGsSOMcADb/rKsYeQyB1kiCBQzahVgNYSqWgXocb"
    "JLKrY2U2Z4Go85YRtmMIEx1+/JvHiwGs8iFQtdJf2LwFX34SsCWPkF58wNpzNBNrCIYJxi"
    "S1h7ttIv+/wXfOrVSqUH8t3k5h3k0zmC2n9HHl1YvJpJ/jj5vrZzHvNgRRogP97KuYDYgx"
    "hrzdudd0dHBcIRkMqNR1RffMtXAV0ZggNAxXAxhgMHs07KIADvMtu1T1r7WoX5/raazhd0"
    "B+32IhHgUaoknpsbiMf960T3786KKDsZBEV0fZZU9TLzkdZ2z8G2nRvjR3Gv5uL0uH5+Fg"
    "T38mFVXN+7abRa6eDeAVLgeJvmM//CNAKpbkvL35buSYLq3XZtd2PZqalrMYhL5uU9Qoir"
    "PEKUUDy3Gc44euenhiKQKjv0jOwQdMn1l2A+RDyL+P1xyVvhPadmKJ/2vHKhivUqF/pyd9"
    "Cqkq3cRXQU8mp2wY2dLZI3omliLxmzCaY51W0Z8ATJQ8Bvi+Wg5dsa7GWn04r5istm8lQ8"
    "uLnUIPBTNg1CliDZ/L/An2nsmE/edvVxMudegukM6OtjvH56WqRA4fQ0v0JB9iWPecoh6B"
    "PMJ2UYT+JeH92bN/CqNnkdH753xQx+6ewaao4jKzXvtJr9Wrg11BxHbkDNO+ZHX5OWRxZV"
    "/7JhDTUnoJWed03PO1K7M+CqAiVVuaPaD1bV7XggUbBwp0ERNgzmUfEBYcS9KXElGnFCVO"
    "2MO5eVNekynBK4jKKaRNVMVV3xotUVxMGWXeaQHwA2cx/9sn/nEjvcH9eL3P2DVO7xXvXF"
    "z/cyFgJ3P8Wcz5hbKlWQAd3lGoC1Ky4K1dhLsRU1F+k6e4vrstbvIePqeGVSLIb7htmwpd"
    "3vbTIMiAu2gvKcx6BVErIc77DlWjBL2fxvAlmxXoL1Km+T79/hBc0Otee+V9uTkMB3wLsa"
    "ETTgSzUmtYyYwO9ZGRXgUOapsCBfzxs+zP9b/oz6mdd9+Wd3cN6ysr3MmTICeYVnya3chs"
    "iPqgTDvvgrZHcrtdEwoyC0VE1RBFJVc5Wsb3nRzezrPx4SHh8="
)
