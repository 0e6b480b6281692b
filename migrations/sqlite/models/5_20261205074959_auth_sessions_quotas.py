import unicodedata

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


def _normalized(email: str) -> str:
    # accounts/emails.py's normalize_email as this migration was written: a migration
    # must keep doing what it did when later code changes.
    folded = unicodedata.normalize("NFKC", email.strip()).casefold()
    return unicodedata.normalize("NFKC", folded)


async def _normalize_emails(db: BaseDBAsyncClient) -> None:
    """Stored addresses in the form logins now look up exactly (accounts/emails.py)."""
    rows = await db.execute_query_dict("SELECT id, email FROM users")
    groups: dict[str, list[str]] = {}
    for row in rows:
        groups.setdefault(_normalized(row["email"]), []).append(row["email"])
    clashes = [" and ".join(sorted(group)) for group in groups.values() if len(group) > 1]
    if clashes:
        raise RuntimeError(
            "these accounts' addresses become one once normalized (NFKC, lower case); "
            f"merge or delete them, then migrate again: {'; '.join(sorted(clashes))}"
        )
    for row in rows:
        normalized = _normalized(row["email"])
        if normalized != row["email"]:
            await db.execute_query(
                "UPDATE users SET email = ? WHERE id = ?", [normalized, row["id"]]
            )


async def upgrade(db: BaseDBAsyncClient) -> str:
    await _normalize_emails(db)
    return """
        CREATE TABLE IF NOT EXISTS "active_jobs_bounds" (
    "owner_id" CHAR(36) NOT NULL PRIMARY KEY,
    "bound" INT NOT NULL,
    "counted_at" TIMESTAMP NOT NULL
) /* Per owner: the lock row of the active-jobs cap and an upper bound of their unfinished jobs. */;
        ALTER TABLE "users" ADD "sessions_valid_after" TIMESTAMP;
        ALTER TABLE "users" ADD "session_kept" VARCHAR(32);"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        ALTER TABLE "users" DROP COLUMN "sessions_valid_after";
        ALTER TABLE "users" DROP COLUMN "session_kept";
        DROP TABLE IF EXISTS "active_jobs_bounds";"""


MODELS_STATE = (
    "eJztXW1z2rgW/isavtxkhm1Tkqa9aWdnCHG7dCn0Atnu3WXHEVgEL8ailhzK9Oa/33PkF7"
    "CxiU2gJaw/bDdY50jyI+m86Uj+Vppwg1niWXUgzTv2gffFJXdto3RBvpVsOmHwRxpJmZTo"
    "dLogwAeS9i3FQxWx/jdQ630kV8W0L6QDRUAxpJZg8MhgYuCYU2lyG/k+MYfwmc2cCyJHjF"
    "h8MCYOnxE+VL+9an/CasmATgm1DfiPuNMp8Kl2fErTIa49NG1TjJhBkP4ZdsDgA+iBad/u"
    "uK2e3bO1O+bMCTUmphDwdkhss1mclBxRItz+xJRlQonDpDM/Vl0RqhOqf/8Sql+mTUwpej"
    "Y8IwCjLbCH3C4TwYmccagdWiQGG5gG9F4Sbg8AYdVtwxBkNoJnplQ9khKal5zcqPe4gf7i"
    "uAKHNSde9wh3pcCKsGMipCRC0rmI4XABdZsWkhIx4jPsLZ+Uic179gDKoVUBnWMGM95gv/"
    "C9ANAy4Y7qI7lRVMzQqbxBWm4ZULUcUUDxQ+uyUW9qerXWrf+m6fCzo7e12i9a7Ve9o9Va"
    "zatOWdWowKQOVO1VBkB7tfgje4QEz7+4XFLxbDo/VvPBtc0vLtMlv2VA6MCs+PMveGwC61"
    "cmgp/TsT40mRVdFWpkdFOtA1Wqy/lUlVxf16/eKXqccX19wC13Ysd5pnM54nbI5Lqm8Qw5"
    "seyWAR2Fl1haKLZrWf7qCh55vYcH0nFZ2G1j8cBgQ+pauNxKb4euraYLUS3hP2c/+x1cIt"
    "P1ZqsLwHZ1vbSyOrELsUXkPxpwG1e2aUsE7du9V+8CFvW0hA3Ufqm2j07PjxUEXMhbRxUq"
    "0Er3ipFK6rGqAVgg3g/EThTuui2T0Q7pY1BDLzcBOXiwQHkhwwL8TnYEKHQW/vdT5cXZq7"
    "PXp+dnr4FE9TJ88moN5vVmV0G7gHKx4FbxvAJMpDlhyaBGOWPIGj7rs+CPXeEcAPd95263"
    "/lHrdKsfP2H1EyG+WAqvalfDkop6Oo89PfKmOge152nGsBLyud79heBP8kerqcUXREjX/a"
    "OEfaKu5DrIfh2E+RImwePg0T0KrOF4aQHhgz4djGfUMfSVEl7habSrRZPKJP6E2vRWDRKi"
    "if30rYUrU0ypHIzaqmsrxsRy8VpDAqS2bvjE2UyILqpNV/b51wvQqMAPOkeyyRSUkzQtC9"
    "Ven5Gp27eUFi6TmYP60Eb9itpiSbWiDpJkQpUaJIbLVo2InbaGZgQ2oLS/ANVuMdRsCawO"
    "G3DHgD6RG1hFLgOdTqphsw45QgbPzpBA1bMdBnRCog5Gs8OiYHYMLGpOBDben5MJv1PV0T"
    "tqqrWqtPOUAg9MN1+7UjKE6ToCDY6sN+We7dsiqkbhmyR+N1SnBcwD9T6+gfIGbQn2dWo6"
    "8GKqFnxTqBVMmFtYlGlq+k81MzxV6iNe+iumu7+VFpO1tPweJSSERqHvaJqFszmYpKbxNZ"
    "x0esio5qUv6UqqAhgB9eM+1UpIsg8uzdtUnZVoGyQoLF/BP84o2KEU9RXWvyuV09NXlZPT"
    "89cvz169evn6JNRcq0XrVNhl/T1qsYgkDdRausWwmCJZLbQFxzbts/1VaQ+aYwswg1WW3Q"
    "Bb4vh+JtjuJ/XWrDDwRMaJ87M2ok4ypEssMUiho08R0gn9qlvMvpUj+Hl+tga/36ptNVvP"
    "z2IWVdMvqaiiKMSgRTcwchdchYG7dwZuRCYtK/WcgxznLYZ6r4da2YZ5RGXIsJGg9I2lfR"
    "nJXctJaJ2JHKo9pC9iK3GtboGLpDPH4c4qnl3wGZIBjXIdwpRdJ3y037sRuRNMzaOP1d+P"
    "I7Kn0Wq+D8iXpnKt0bqMx7QcRjeMaUU4Cz2wd3pgT2JaH3hfu2O2TIlpLReXH4ppMaTMuC"
    "nWshlR9GU/oOJOcTIaGLzxY0JviIk/DeYIj1QQOnC4EN6+yBAoh4wZCbtg2678gViNYF/W"
    "x2mW90jg3wyRGq9LumIsYjRFjOYfHKPB1ZXdiPOpi9hMUmwG0Uj0NjTbnSg869ABag/Yqn"
    "Hs8+5zhKbUub78WO92tauLYF+AGT37P9faNT7yNhF6NmjrtkcjqaMoPrVb79tap3NBpg7H"
    "qSh6dlvrtv9bb76/8BIY1AZD57pW07Qrr/7BQG3/9+x31XoDHw3B98bftWqzpjX0tgYNd1"
    "RDA4TU0v39iQVNY1GoOD+32r9qbb3R6nQvyIw7Y9AaFqyOuILL4k9VsvhTlXR/qrLiTxXB"
    "0m0vyA0CPIU5v5/mfCRAC3bB6sB+6LSaKaFZnz4+rOZAkv8RyxRPca2sGVBEYr2rHPeKY4"
    "OEFcRd5X3KXdpf6B+wu/bHKU33R7O4ohmdUMxDGLiOA74WuTOZSpPktsq7K4PaD9Iahg6f"
    "YJpi4Cgm5CpAb5itchWgZJKcUrGzlhLd06jPCWqYQwODuT5m8+zOajSKlM11VfmxXiU++x"
    "oHFldwSttgnUm2hU6E9WTrwsat5X7Zx79gzldbRjew5x8JblBNtg48utEHmssVDklXC0Uy"
    "62bJrOn+ZcqGyxPwKTfczXpxcpLB/QKqVP9LlUVNHOXA5gE4ZCgQzoZwKFA3CZGEzPuMdu"
    "mT1rxSYQ3fjFiNj7Svm00v8OHatqJ4bCwkGufYJJrx4jzLYMedvqWxPo8PdRDpWR3tzoRa"
    "VmpMY5nvYDaKTyuvzsNgBv5YF8fofKw2GqvBjAmAAub8Kp7pG8RLLMXucP7d4ScSkHux27"
    "m7tWjc1DE5+GHz/BJhwVdIhGVA6dziNMH0Tg+FLbEU0bBHRMOgCPufA/kFx6OAfzoieSe4"
    "p+RIpcOelh5VoF7Efn/cnrvK3Mu38b7McjBacHuHU2M7wKvAXnJuMWqnZPMlsMdA7gP/rl"
    "AOn3zfCXvZajUisuKyHreKrz9eauD4qTkNRKZkyfj/gGMpeyaTd51tHd9jyIF0AuvhIV55"
    "+TJLQsbLl+kZGVgWN/OUQNBHVIzyIB7nOzy4tz/Bi1zsTWT4k0ve8FOFNxjmKGcxzHs9zH"
    "7u3wbDHOXcwjDvmRw9pFEOrqXaYJhjrMU479s470muUoPfmvY7alquw0oJGUuR8vK6vCUL"
    "KfWhR5rjGI2310YUezm8KgxvMqMD764yvC8Nfw8sExOQAFjcwSJHfrl4LkcOl9Ji4SViK8"
    "dptt0IXgNzA8a+uhyNEvgLqkNzFDOjeiWf6eItm0DDP/dKeHQHHnuVXrw1p/Dswrv/jWKz"
    "Au+agUlsECp6NiWugK7gUJAjwSdqiQr/YrspFWLGHePYu8MNzwcJyR1mZLw+LZLS4vsr2e"
    "5fiY5w4OsUZ3ue0tmenL7tY/zZfbP/du1h7Xc6/Pec6oVu3opubrM7PmZGxxPJSdo5RrFW"
    "PzserS4CCZ9JQ1dBWfKxyYjPRhjMKANvIwNtwF15ofJ9JdRs45FUUEkOG4L2wss+pWl5+b"
    "+q1LtRLOG4626aeMQ9on9LM4+M9Mm3IyN/rIqKSMjTSgYJeVpJlZBYtF4Z+eO1gXsT5Swk"
    "aCFBEyXotVArf0VuqudrpSUa4FlFpB04EW8I3hwN5rwy3wVj6iSEM8dzEglyLzvfI4RZkT"
    "v+PXLHlZ+XR2mEDAeoNrJkNgPVGsWxktmMrjXYLoHvmwfpBNYDdGdenGQ6MY1kazLKV09N"
    "m6Bj1a37CU77ui3/CN933OsP5v2T3eoH4EJVkB/zCGuRYpEPd1C5JrSSN7slxlmgngP1Yl"
    "c6Xb7DCxot25r7Uu2JuAS+AF6/e+mHIPQ7apkwhEOZJOse2MdMqaPY6do3XzBh5PUxSzr4"
    "kW7ExfkOL+NnO9GWPfG7q65hpt3JF5aV136tCqlwxymbD/4Zd9JG6nIBZpCjCbjJ3CgTh7"
    "uSETw0ZMG0KOOVSdIVx2UyG3FCxRi//jDiM2Jx+xY/siA5H6866tusfPH9CGQ2vU9KBXWQ"
    "o5vndGo+v3vxXH0a6Zt3r9r9zTF+usn7TJNDZ2RK5cj7jJTNyQjUBHPK+GEnjKKW8SCkMy"
    "de93Hfsc+NObaktgpxAcFw4eUN3qeyJniykYB1M8YgBAO1Cu/KHLbJbmK2bURvaD29ne3g"
    "PRq0ue4f9JoI7OBsjagRydtEyFTsgj6lXdD93qrbhhYqzUbMu30l+KwMdRxwx0F+XXdrx3"
    "EZd/iWhye189gcC45DjBdt/UR6KAozZ3EHDAcI707S5T0DYxXi9ed7F1yHdInhNg74LpkV"
    "WfdHllgesUmyZ47Itg7deUdgJgkz9J3FaerBu2W2GKhD5HuCk3QNolet68uGRj61tVq9U/"
    "dPk4aaUhVGg2ZtrdqIR81UjmIeWbvgODzPefuZXMH5onwn7qJcB6jUtgP0voQomGMORqWk"
    "AIVXUl4bnljQPBSbSAd7y7v6/xTf8ZGnmtO9wjvmBGl0Wdf8EssBLvidWLG4qHIg7JMfIL"
    "o7uQIOWpSJtkH6HR5LLMWlNTmv8fihyuz+/ww1umg="
)
