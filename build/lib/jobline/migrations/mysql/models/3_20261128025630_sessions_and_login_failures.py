from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        CREATE TABLE IF NOT EXISTS `login_failures` (
    `id` BIGINT NOT NULL PRIMARY KEY AUTO_INCREMENT,
    `key` VARCHAR(64) NOT NULL,
    `at` DATETIME(6) NOT NULL,
    KEY `idx_login_failu_at_cfd6ec` (`at`),
    KEY `idx_login_failures_key` (`key`, `at`)
) CHARACTER SET utf8mb4 COMMENT='One failed login, counted per account and per client address (accounts/throttle.py).';
        CREATE TABLE IF NOT EXISTS `revoked_sessions` (
    `jti` VARCHAR(32) NOT NULL PRIMARY KEY,
    `expires_at` DATETIME(6) NOT NULL,
    KEY `idx_revoked_ses_expires_dcf1e3` (`expires_at`)
) CHARACTER SET utf8mb4 COMMENT='A cookie session ended by logout: its token id is refused until the token expires.';"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        DROP TABLE IF EXISTS `login_failures`;
        DROP TABLE IF EXISTS `revoked_sessions`;"""


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
    "3ZlmKxjEpJ1sQ1i6t9wf+/wPfOrTcoUH0tXk6hXk0zGC0oeux/0Zb3rCfw5/Kq2dxiwvCA"
    "Ok+1spBxAb4GMtebqzv7eXwR0BqlR/xNRFTb5x6PIAPGEoEM6G8ETBLBMymDCvM9qlz9Wb"
    "S+PmB2Z1Pl7QuL258QMBHueG4rmxgajfv4x3v3+cRdhxJ2hG1sdxUYeRj3lpNwfUdVN9/F"
    "m+rTk4PaicHE+ce/yxyK9vXp9dXc079wMABba383imH5jOsBSnpflPSzckQLX/snN3ZdGp"
    "oXQE+CXj/BphyldohFlA6dgVNGHrnR4ammEpokPPiA5BFY4/B/JTjmcBvzkq+UVwT8kZSo"
    "c9LV2oQL2Ihf64M2iTyZbvIHqWZWus4Mr2FvET0Xlgz4VwGeUp2W0J7DGQ28D/UihPSl53"
    "wp7X61cRXXFei++Kb6/Pq+D4mTkNRI5myfj/gGsaa6aTXzr7OB5zz4F0Auv2IV45OsqSoH"
    "B0lJ6hgHXxbZ5RCFaPql4exON82wf36id4kZu8jA7fuGSGIHV2CTFHOQsxr7WYg1y4JcQc"
    "5VyBmNdMj26TlLsON082LCHmGGsh53WT85rk7lyJB4d/pI7rSVZKyOCJ1JcX5fG4SGl1fd"
    "Ic10r8szZi2MukIzyOVz+G+LRHx/wilPu/O66DCTkALJ5gkZ2gXr3VPSm0dtmb4Xg3+XrJ"
    "qjvBZ1HuYbN/j0+FUAJ/QXO4HcVMobtSwHT6gQ2g45/uSniVBYr9Rk8/OEMoOyUjfG2FYr"
    "cK316BSWwTqu44JZ6CoaAoyI4SA7NEFWYQORLfP1EjIe1d7Nq/L6O0kMxOSy5alD0U+CvZ"
    "3iOJSjj0dYq7Lpt01yWnb/scf3bd9n8v7WGtd3r4a071wjavxDY32KPoM7vpq+Qk6xyjWG"
    "ifpU9rqVDDZ7LQZ2AsRd9hJGAjDGaUja9zgTUQnj41+a8aWuZ4RRNMkmRdsF42AfvnuH4+"
    "rKn1X9hKuP75Ml08bQhTLdRf2smjIwPy1ejIH2uiIhryoJJBQx5UUjUkVi02RoG8lnBvop"
    "yFBi00aKIGvVVm5c/pTVO+UFviBjyriuShE/EeNvPKg+282b4rxszNADnGewMJei873zOU"
    "WZE7/hq548bPy2M0JgxbaDayZDYD1QLDMZfZjK417F1C3zcP0gmsW+jO7O9lukGMZAsyyu"
    "dvETtgY2FtPiYkxi488o/wveJZfzjvN/aoH4CbmIL8mEdYixSLfLiDyXWgl7zZLTHOAvUc"
    "qBen0un6HT7QrnN3HGi1DXEJAgW8rh7BmWc7aa9nTeoWegYUqTAWns07+BVj/D1zDZjZZG"
    "cAG3hhl4kUnmYErzO4MCXL+LiJ9tRumYx6glDVx3fae2JEXMEf8Dl0LUR/3oVYZePTl96R"
    "2VF+XCVog+zcv6VD5+3j/lu8yvr2m/8C0vd7aJQLbWglHZEh1b2yOUvhgvRgAjNZvuN+fK"
    "eMV7TAqfGHjycibWGPsSdziNFnQw3iwmvWomtuS+OdKwJ6t4/uEYMFD9/KJFvmnCPbAYcv"
    "Wl+jZLsUjKY210thfhehhc7WiZFI3i4mTMX5zCadz6z3IcJKrnCOesx/JyH8DyColOAogP"
    "66bV3sxnXcdsbHojcPUWvncWmnHNvoya78ruxEFWbOLw0ZthDeF0nk9TcY8xAvvnk45dqm"
    "58ZWcfVwZluRNXI7w/KM8O3mJHnlug7kJ+cPEmboR1fQ1CtBs2wxULvIt4GTdAGil/Xb86"
    "sq+dyoXtSateCe28RSmsqoO9+onl3F/XmTPZVH1045iiz+p3NMwpsP+e4CRbm20KitBuh1"
    "CVEw6XR6paQAhV9TXhiemNI8FZtIB3vF541/F9/xmfct073CRybDBJ+sa36GZQsX/IvsYn"
    "FR5UA4IN9CdF/kcSroUSfuDdJfF5hhKZ7TyPnAwA81Zt//D1XimQE="
)
