"""The facts the demo corpus teaches, in Chinese and English. Written for this project."""

# (country zh, country en, capital zh, capital en)
CAPITALS = [
    ("中国", "China", "北京", "Beijing"),
    ("日本", "Japan", "东京", "Tokyo"),
    ("法国", "France", "巴黎", "Paris"),
    ("英国", "the United Kingdom", "伦敦", "London"),
    ("德国", "Germany", "柏林", "Berlin"),
    ("意大利", "Italy", "罗马", "Rome"),
    ("西班牙", "Spain", "马德里", "Madrid"),
    ("俄罗斯", "Russia", "莫斯科", "Moscow"),
    ("美国", "the United States", "华盛顿", "Washington"),
    ("加拿大", "Canada", "渥太华", "Ottawa"),
    ("澳大利亚", "Australia", "堪培拉", "Canberra"),
    ("韩国", "South Korea", "首尔", "Seoul"),
    ("印度", "India", "新德里", "New Delhi"),
    ("埃及", "Egypt", "开罗", "Cairo"),
    ("巴西", "Brazil", "巴西利亚", "Brasilia"),
    ("墨西哥", "Mexico", "墨西哥城", "Mexico City"),
    ("泰国", "Thailand", "曼谷", "Bangkok"),
    ("越南", "Vietnam", "河内", "Hanoi"),
    ("希腊", "Greece", "雅典", "Athens"),
    ("葡萄牙", "Portugal", "里斯本", "Lisbon"),
    ("荷兰", "the Netherlands", "阿姆斯特丹", "Amsterdam"),
    ("瑞典", "Sweden", "斯德哥尔摩", "Stockholm"),
    ("挪威", "Norway", "奥斯陆", "Oslo"),
    ("芬兰", "Finland", "赫尔辛基", "Helsinki"),
    ("波兰", "Poland", "华沙", "Warsaw"),
    ("奥地利", "Austria", "维也纳", "Vienna"),
    ("爱尔兰", "Ireland", "都柏林", "Dublin"),
    ("阿根廷", "Argentina", "布宜诺斯艾利斯", "Buenos Aires"),
    ("秘鲁", "Peru", "利马", "Lima"),
    ("肯尼亚", "Kenya", "内罗毕", "Nairobi"),
    ("土耳其", "Turkey", "安卡拉", "Ankara"),
    ("伊朗", "Iran", "德黑兰", "Tehran"),
]

# (thing zh, thing en, colour zh, colour en)
COLOURS = [
    ("天空", "the sky", "蓝色", "blue"),
    ("草", "grass", "绿色", "green"),
    ("雪", "snow", "白色", "white"),
    ("香蕉", "a banana", "黄色", "yellow"),
    ("煤", "coal", "黑色", "black"),
    ("番茄", "a tomato", "红色", "red"),
    ("橙子", "an orange", "橙色", "orange"),
    ("茄子", "an eggplant", "紫色", "purple"),
]

# (word zh, word en, opposite zh, opposite en)
OPPOSITES = [
    ("大", "big", "小", "small"),
    ("高", "tall", "矮", "short"),
    ("快", "fast", "慢", "slow"),
    ("热", "hot", "冷", "cold"),
    ("上", "up", "下", "down"),
    ("开", "open", "关", "closed"),
    ("新", "new", "旧", "old"),
    ("早", "early", "晚", "late"),
]
