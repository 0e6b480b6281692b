from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        ALTER TABLE `jobs` ADD INDEX `idx_jobs_owner_type` (`owner_id`, `type`, `created_at`, `id`);
        ALTER TABLE `jobs` ADD INDEX `idx_jobs_type` (`type`, `created_at`, `id`);"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        ALTER TABLE `jobs` DROP INDEX `idx_jobs_type`;
        ALTER TABLE `jobs` DROP INDEX `idx_jobs_owner_type`;"""


MODELS_STATE = (
    "eJztXW1z4jgS/isqPiVV3ExC3uYyU1uVF2aWvSTMAbnd282WI7AIXozESHIYam7++3XLNm"
    "BjE5uQDLD+MhWkbkl+WupWt1qab6WBsJmr3lw6akh1p9cQo9Ip+VbidMDgj6TqMinR4XBa"
    "iQWatl1D/5doW3ZAbCjbSkva0VDXpa5iUGQz1ZHOUDuCI0erx4jwdFt8PSWUAD+hWrPBUB"
    "OlHdclWpA2I0Ov7Tqqx+wyGUkHCDhxONHAC81zBT1Ac/CbajKgNiOOJrbH3uAQbNGBMTj8"
    "4cV7u+N3HDuQYkQcRQAcppmdxCpZR0gbxkTuv3jMY/b9G3I26VaSHWRQXnsAnQPVHZcM6J"
    "QmQsKwJXPpeJd0XOoMFHbeHpOBeDTN0UfquCgNi+p7MqTAw2E4HrcZsnYlUz1yb1jvy3dc"
    "CaJHwm9REc4egSoYhhm0gnlgvgc+VfAOe08oJ+zr0JHwYaYV/FJolRH6QB1uEPe4A6O1tH"
    "hg0IYE3P/4w8wMxzZzwke89Oef8MOBgX1lCmm+lboOc23zd2n2O0pICJ3C2BWgZwiwKJyk"
    "jv11MumsCaOZl+OhoSiZBkAC5sd3ZB72LdNdZLr7AzTlVsh77jzUuP5oaHE6ta2OcL0Bn9"
    "IPx7on+ITB4RpLHxhnksIEgDItPZz63HPdYKWEq8HHakri4zHDY7Mu9VxcQMjtD2BaVrKs"
    "m3rLalZbllWaW1whx8wKCIo6ACPAAUNVBoAHHMI//lmpHBycVPYOjt8dHZ6cHL3bewe0Zr"
    "zzVSff/cFM0fKbMpjVPtVuWjggAavfVw1Y8N3wUE2tqain6E+nSFQCt7e1y2T8pxwxGXie"
    "Y79BvrgkQtwXiSIsmMpiqrteQRgLcL34+ayxc3C8a75YKP0gTaVByIA7BTNcZXNopk7mGY"
    "6nZ/QG4BhM6sr+4cnhu4Pjw8lcnpQsmsLhdJ0iqqnqJ87Pix6VyZDOsMQghYFuIqQD+tVy"
    "GX/QPfh5fLgAv/+cNcxsPT7cjeqBm6CmYqqiEIMVRX0/h/AlQKSdAUtGecoVA9kO2N6Ef2"
    "wg5AsgbtWuq83W2fVnbH6g1BfXYHXWqmJNxZSOY6U7xzFxTBohv9ZaPxP8SX6v31TjKmZC"
    "1/q9hGOinhYWbC0sas9iEhaHRVGdNGvUcwo5zluIeq1FbfaGeVTlhGEpRRlsltZFki+tJ6"
    "F3pnKY9gn96xn2vQ2x6i64SBaTUsh5PFvgMyQDGuXahim7SPlUf2tF9E44NXeuz37bjeie"
    "q/rNp5B8ZipfXNXPY7h3JENslrAEUc7CDqydHUD3utufcfGwoE07/RGVtjVXIyoijXa+al"
    "AZxEsopw9GSIgmjjMIWv0i2tVHxnVKTGu2uvxUTIshpcoW0apzRgx9OQioeEOcjDYGb4KY"
    "0Hvi4E+bSeWTKkI7UiiFISlFukDZZcxW8wGsVTf+RKxGsS+L4zRiBEsrIIZ/M0Rq/CFZhr"
    "GI0RQxmr9xjAZXV/ZNXEBdxGaSYjOIRqK3UeXewOBZgwFQ3mHzm+OAd50jNKXm7fl1rdWq"
    "Xp6G5wLMvuP/vq3eYpF/iHDHwVo3fBpNpaH43Kh/alSbzVMylAKnorrjjWqr8d/azadTIp"
    "mWY3PA0Ly9uKhWL/32Ox2wD8j98ax2hUVd8L3x98XZzUX1ympUoeOm6aiDkLpWcD4xpbma"
    "VhrOX+uNf1Ub1lW92TolIyH7YDVcWB1xA5fFn6pk8acq6f5UZc6fKoKlq16QSwR4iu38em"
    "7nIwFa2BfMC/aXZv0mJTQb0MfF6nQ0+R9xHbWJa2WBQBGJxa5y3CuOCQkbiLvKs3vsrLuu"
    "WZ5i3wWAro9Tmu6PZnFFMzqhmIfQ8aQEX4s8OmxERJcI8B2hhTKY/TCtoSvFgDh64igm5C"
    "rAaBg3uQpQM0hOqXixnhLd06jPCWZYQAedsdVn4+zOajSKlM11Rfh9x9UK2Bc4sLiCU/qG"
    "3ZlmKxjEpJ1sQ1i6t9wf+/wPzPlps+iG+/lnghs2k20Az+70ie5yhUPSzcLqDcLTMZHSh6"
    "7H/RVuesJ/Dn8qrZ2FKC8Ie6T7lykHLhvgUy55mrW/t5fB/QKqVP/L1EW3OMaBzQPwhKFA"
    "OBvCE4W6TIhkwrzOaJc+V28uTVgj2EbMx0catzc3fuDD49xQPDcWEo1zLBPN2D/OIuy40z"
    "cj6+O4qMNIz7y0mwPquqkxjVm+rTkoPqicHE+CGfhjURyjeX12dTUfzBgAKLCdn8cz/YB4"
    "hqU4Hc5/OrwhAbn9l527K4vGDaUjwA8b59cIU75CI8wCSseuoAlb7/RQ2AxLEQ17RjQMqn"
    "D8OZCfcjwL+M1RyS+Ce0qOVDrsaelRBepF7PfHnbmbzL18B++zLFtjBVe2t4ifAM8Dey6E"
    "yyhPyeZLYI+B3Ab+l0J5UvK6E/a8Xr+K6IrzWnxXfHt9XgXHz8xpIHI0S8b/B1xLWTOd/N"
    "LZ1vEzhhxIJ7BuH+KVo6MsCRlHR+kZGVgX3+YZhWD1qOrlQTzOt31wr36CF7nYy+jwjUve"
    "CFKFlxBzlLMQ81qLOcj9W0LMUc4ViHnN9Og2SbnrcPNExRJijrEWcl43Oa9JrtKVeHD4R+"
    "q4nmSlhIylSH15Ud6Si5RW1yfNcY3GP2sjhr1MOsLjeNVliE+ZdMwvQrn/u+M6mIAEwOIJ"
    "FtkJ6tVb3ZNCa5e9GY53k6/TrLoTfAbmHjb79/g0CiXwFzSH21HMjLorBUynH9gAOv7pro"
    "RXd6DYb/T0gzOEslMywtdlKHar8K0ZmMQ2oeqOU+IpGAqKguwoMTBLVGHGlCPxvRc1EtLe"
    "xa79+0FKC8nstGSqRdlSgb+S7f2VqIRDX6e427NJd3ty+rbP8WfXbf/30h7WeqfDv+ZUL2"
    "zzSmxzgz2KPrObvkpOss4xioX2Wfq0lgo1fCYLfQbGUvQdRgI2wmBG2fgaGVgD4elTk++r"
    "oWWOV1LBJEnWBetlE7B/juvn/5pa/0WxhOuuL9PF04Yw1UL9pZ08OjIgX42O/LEmKqIhDy"
    "oZNORBJVVDYtViYxTIawn3JspZaNBCgyZq0FtlVv6c3jTlC7UlbsCzqkgeOhHvYTOvPNjO"
    "m+27YszchJBjvCeRoPey8z1DmRW546+RO278vDxGY8KwhWYjS2YzUC0wHHOZzehaw94l9H"
    "3zIJ3AuoXuzP5ephvTSLYgo3z+1rQDNhbW5mNCYuzCI/8I3yue9YfzfmOP+gG4iSnIj3mE"
    "tUixyIc7mFwHesmb3RLjLFDPgXpxKp2u3+ED7Tp3x4FW2xCXIFDA6+oRnHm2k/Za2KRuoW"
    "dAkQpj4dm8g18xxt8z156ZTXYGsIEXdplI4WlG8DqDC1OyjI+5aE/tlsmoJwhVfXyXvidG"
    "xBX8AZ9/10L0512IVTY+fdkemR3lx1WCNsjO/Vs6dN4+7r/Fm6xvv/kvPn2/h0a50IZW0h"
    "EZUt0rm7MULkgPJjCT5Tvux3fKeEULnBp/+Hgi0hb2GHsyhxh9NtQgLrxWLrrmdjjeuSKg"
    "d/voHjFY8PCtTLJlzjmyHXD4ovU1SrYrwWhqc72M5ncRWuhsnRiJ5O1iwlScz2zS+cx6Hy"
    "Ks5ArnqMf8dyHC//CCSgmOAuiv29bFblzHbWd8LHrzELV2Hpd2yrGNnuzK78pOVGHm/NKQ"
    "YQvhfZFEXn+DMQ/x4puHU65tel5tFVcPZ7YVWSO3MyzPCN9uTpJXrutAfnL+IGGGfnQFTb"
    "0SNMsWA7WLfBs4SRcgelm/Pb+qks+N6kWtWQvuuU0spamMuvON6tlV3J832VN5dO2Uo8ji"
    "fzrHJLz5kO8uUJRrC43aaoBelxAFk06nV0oKUPg15YXhiSnNU7GJdLBXfN74d/Edn3nfMt"
    "0rfGQyTPDJuuZnWLZwwb/ILhYXVQ6EA/ItRPdFHqeCHnXi3iD9dYEZluI5jZwPDPxQY/b9"
    "/+oh42Q="
)
